// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title Roles
 * @notice The roles of privledger's organisation members, as bits of a member's role set in
 * {IOrgRegistry}, and the consortium admin's role: one definition for every contract that checks one.
 */
library Roles {
    uint8 internal constant ORG_ADMIN = 1;
    uint8 internal constant DATA_OWNER = 2;
    uint8 internal constant OPERATOR = 4;
    uint8 internal constant AUDITOR = 8;
    /// @dev The consortium admin: OpenZeppelin's DEFAULT_ADMIN_ROLE of the OrgRegistry.
    bytes32 internal constant CONSORTIUM_ADMIN = 0x00;
}
