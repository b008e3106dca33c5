// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IOrgRegistry
 * @notice Identity layer (F1): consortium organisations, their compute nodes and the roles of their members.
 *
 * The consortium admin is any holder of AccessControl's `DEFAULT_ADMIN_ROLE` on the registry. Organisation
 * ids are sequential from 1 (0 means "no organisation"). Every account belongs to at most one organisation
 * and holds a bitmask of roles in it. A role is effective only while its organisation is Active: a
 * suspended organisation is frozen (see {hasOrgRole}).
 */
interface IOrgRegistry {
    enum OrgStatus {
        None,
        Active,
        Suspended
    }

    struct Org {
        string name;
        address admin; // account registered as the organisation's first admin
        string endpoint; // compute node endpoint
        bytes32 nodeKey; // compute node X25519 public key
        OrgStatus status;
    }

    error OrgRegistryUnknownOrg(uint256 orgId);
    error OrgRegistryInvalidName();
    error OrgRegistryNameTaken(string name);
    error OrgRegistryInvalidAdmin(address account);
    error OrgRegistryInvalidAccount(address account);
    error OrgRegistryAlreadyMember(address account, uint256 orgId);
    error OrgRegistryNotMember(address account, uint256 orgId);
    error OrgRegistryUnauthorized(address account);
    error OrgRegistryInvalidRoles(uint8 roles);
    error OrgRegistryInvalidStatus(OrgStatus status);

    /// @notice Emitted when organisation `orgId` is registered, Active, with `admin` as its first org admin.
    event OrgRegistered(uint256 indexed orgId, string name, address indexed admin);

    /// @notice Emitted when the consortium admin activates or suspends an organisation.
    event OrgStatusChanged(uint256 indexed orgId, OrgStatus status);

    /// @notice Emitted when an organisation's compute node endpoint or key changes.
    event NodeUpdated(uint256 indexed orgId, string endpoint, bytes32 nodeKey);

    /// @notice Emitted when the role bits `roles` are added to `account` in organisation `orgId`.
    event RolesGranted(uint256 indexed orgId, address indexed account, uint8 roles);

    /// @notice Emitted when the role bits `roles` are removed from `account` in organisation `orgId`.
    event RolesRevoked(uint256 indexed orgId, address indexed account, uint8 roles);

    /// @notice Emitted when an organisation publishes (or withdraws) its dealer service.
    event DealerServiceSet(uint256 indexed orgId, bool published);

    /// @notice Role bit: manages the organisation's node and members (1).
    function ROLE_ORG_ADMIN() external view returns (uint8);

    /// @notice Role bit: registers datasets and authorises their use (2).
    function ROLE_DATA_OWNER() external view returns (uint8);

    /// @notice Role bit: submits tasks and reports their execution (4).
    function ROLE_OPERATOR() external view returns (uint8);

    /// @notice Role bit: regulator read access; granted and revoked by the consortium admin only (8).
    function ROLE_AUDITOR() external view returns (uint8);

    /**
     * @notice Registers an Active organisation whose `admin` becomes a member with ROLE_ORG_ADMIN.
     * @dev Requirements: caller is the consortium admin (else {AccessControlUnauthorizedAccount}); `name` is
     * non-empty and not used by another organisation (case-sensitive); `admin` is non-zero and not a member
     * of any organisation. Emits {OrgRegistered} and {RolesGranted}.
     */
    function registerOrg(string calldata name, address admin, string calldata endpoint, bytes32 nodeKey)
        external
        returns (uint256 orgId);

    /**
     * @notice Activates or suspends an organisation.
     * @dev Requirements: caller is the consortium admin (else {AccessControlUnauthorizedAccount}); `orgId`
     * exists; `status` is Active or Suspended.
     * Emits {OrgStatusChanged}.
     */
    function setOrgStatus(uint256 orgId, OrgStatus status) external;

    /**
     * @notice Updates the endpoint and X25519 public key of the organisation's compute node.
     * @dev Requirements: `orgId` exists; caller has ROLE_ORG_ADMIN in `orgId` and `orgId` is Active.
     * Emits {NodeUpdated}.
     */
    function updateNode(uint256 orgId, string calldata endpoint, bytes32 nodeKey) external;

    /**
     * @notice Adds the role bits `roles` to `account`, making it a member of `orgId` if it is not one yet.
     * @dev Requirements: `orgId` exists; `roles` is a non-zero combination of the four role bits; `account`
     * is non-zero and not a member of another organisation; caller is the consortium admin, or has
     * ROLE_ORG_ADMIN in the Active `orgId` and `roles` does not include ROLE_AUDITOR.
     * Emits {RolesGranted}.
     */
    function grantRoles(uint256 orgId, address account, uint8 roles) external;

    /**
     * @notice Removes the role bits `roles` from `account`; an account left without roles stops being a member.
     * @dev Requirements: as {grantRoles}, and `account` is a member of `orgId`.
     * Emits {RolesRevoked}.
     */
    function revokeRoles(uint256 orgId, address account, uint8 roles) external;

    /// @notice Returns organisation `orgId`. Reverts with {OrgRegistryUnknownOrg} if it does not exist.
    function getOrg(uint256 orgId) external view returns (Org memory);

    /**
     * @notice Publishes (or withdraws) the organisation's dealer service: its consent to deal correlated
     * randomness or aggregate for other organisations' tasks. Only a published dealer can be named in a task.
     * @dev Requirements: the organisation exists; caller has ROLE_ORG_ADMIN in it. Emits {DealerServiceSet}.
     */
    function setDealerService(uint256 orgId, bool published) external;

    /// @notice Returns true iff the organisation is Active and publishes a dealer service.
    function isDealer(uint256 orgId) external view returns (bool);

    /// @notice Returns the number of registered organisations (which is also the highest orgId).
    function orgCount() external view returns (uint256);

    /// @notice Returns the organisation `account` belongs to, 0 if none.
    function orgOf(address account) external view returns (uint256);

    /// @notice Returns the role bitmask of `account` in its organisation.
    function rolesOf(address account) external view returns (uint8);

    /**
     * @notice Returns true iff `account` is a member of `orgId`, holds every bit of the non-zero `role`
     * there, and `orgId` is Active.
     */
    function hasOrgRole(uint256 orgId, address account, uint8 role) external view returns (bool);

    /**
     * @notice Returns the organisation in which `account` holds every bit of the non-zero `role`, if that
     * organisation is Active; 0 otherwise. Equivalent to `hasOrgRole(orgOf(account), account, role)`.
     */
    function orgWithRole(address account, uint8 role) external view returns (uint256);

    /// @notice Returns true iff `orgId` exists and is Active.
    function isActive(uint256 orgId) external view returns (bool);
}
