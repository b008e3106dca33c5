// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IOrgRegistry} from "./interfaces/IOrgRegistry.sol";
import {Roles} from "./Roles.sol";

/**
 * @title OrgRegistry
 * @notice Identity layer (F1) of privledger. See {IOrgRegistry}.
 * @dev The consortium admin is the holder of `DEFAULT_ADMIN_ROLE`, initially the constructor's `admin`.
 * Consortium-only functions revert with AccessControl's {AccessControlUnauthorizedAccount}; the consortium
 * admin may also manage any organisation's roles (e.g. to recover an organisation that lost its admin key).
 */
contract OrgRegistry is IOrgRegistry, AccessControl {
    uint8 public constant ROLE_ORG_ADMIN = Roles.ORG_ADMIN;
    uint8 public constant ROLE_DATA_OWNER = Roles.DATA_OWNER;
    uint8 public constant ROLE_OPERATOR = Roles.OPERATOR;
    uint8 public constant ROLE_AUDITOR = Roles.AUDITOR;
    uint8 private constant ALL_ROLES = 15;

    /// @dev One storage slot per account.
    struct Membership {
        uint64 orgId;
        uint8 roles;
    }

    uint256 private _orgCount;
    mapping(uint256 orgId => Org) private _orgs;
    mapping(bytes32 nameHash => uint256 orgId) private _orgIdByName;
    mapping(address account => Membership) private _members;
    mapping(uint256 orgId => bool) private _dealers;

    constructor(address admin) {
        if (admin == address(0)) revert OrgRegistryInvalidAdmin(admin);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IOrgRegistry
    function registerOrg(string calldata name, address admin, string calldata endpoint, bytes32 nodeKey)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
        returns (uint256 orgId)
    {
        if (bytes(name).length == 0) revert OrgRegistryInvalidName();
        bytes32 nameHash = keccak256(bytes(name));
        if (_orgIdByName[nameHash] != 0) revert OrgRegistryNameTaken(name);
        if (admin == address(0)) revert OrgRegistryInvalidAdmin(admin);
        uint256 current = _members[admin].orgId;
        if (current != 0) revert OrgRegistryAlreadyMember(admin, current);

        orgId = ++_orgCount;
        _orgIdByName[nameHash] = orgId;
        _orgs[orgId] = Org({name: name, admin: admin, endpoint: endpoint, nodeKey: nodeKey, status: OrgStatus.Active});
        emit OrgRegistered(orgId, name, admin);

        _members[admin] = Membership({orgId: SafeCast.toUint64(orgId), roles: ROLE_ORG_ADMIN});
        emit RolesGranted(orgId, admin, ROLE_ORG_ADMIN);
    }

    /// @inheritdoc IOrgRegistry
    function setOrgStatus(uint256 orgId, OrgStatus status) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireOrg(orgId);
        if (status != OrgStatus.Active && status != OrgStatus.Suspended) revert OrgRegistryInvalidStatus(status);

        _orgs[orgId].status = status;
        emit OrgStatusChanged(orgId, status);
    }

    /// @inheritdoc IOrgRegistry
    function updateNode(uint256 orgId, string calldata endpoint, bytes32 nodeKey) external {
        _requireOrg(orgId);
        if (!hasOrgRole(orgId, msg.sender, ROLE_ORG_ADMIN)) revert OrgRegistryUnauthorized(msg.sender);

        Org storage org = _orgs[orgId];
        org.endpoint = endpoint;
        org.nodeKey = nodeKey;
        emit NodeUpdated(orgId, endpoint, nodeKey);
    }

    /// @inheritdoc IOrgRegistry
    function grantRoles(uint256 orgId, address account, uint8 roles) external {
        _checkRoleManager(orgId, roles);
        if (account == address(0)) revert OrgRegistryInvalidAccount(account);
        Membership storage member = _members[account];
        uint256 current = member.orgId;
        if (current == 0) {
            member.orgId = SafeCast.toUint64(orgId);
        } else if (current != orgId) {
            revert OrgRegistryAlreadyMember(account, current);
        }

        member.roles |= roles;
        emit RolesGranted(orgId, account, roles);
    }

    /// @inheritdoc IOrgRegistry
    function revokeRoles(uint256 orgId, address account, uint8 roles) external {
        _checkRoleManager(orgId, roles);
        Membership storage member = _members[account];
        if (member.orgId != orgId) revert OrgRegistryNotMember(account, orgId);

        uint8 remaining = member.roles & ~roles;
        if (remaining == 0) {
            delete _members[account];
        } else {
            member.roles = remaining;
        }
        emit RolesRevoked(orgId, account, roles);
    }

    /// @inheritdoc IOrgRegistry
    function setDealerService(uint256 orgId, bool published) external {
        _requireOrg(orgId);
        if (!hasOrgRole(orgId, msg.sender, ROLE_ORG_ADMIN)) revert OrgRegistryUnauthorized(msg.sender);

        _dealers[orgId] = published;
        emit DealerServiceSet(orgId, published);
    }

    /// @inheritdoc IOrgRegistry
    function isDealer(uint256 orgId) external view returns (bool) {
        return _dealers[orgId] && isActive(orgId);
    }

    /// @inheritdoc IOrgRegistry
    function getOrg(uint256 orgId) external view returns (Org memory) {
        _requireOrg(orgId);
        return _orgs[orgId];
    }

    /// @inheritdoc IOrgRegistry
    function orgCount() external view returns (uint256) {
        return _orgCount;
    }

    /// @inheritdoc IOrgRegistry
    function orgOf(address account) external view returns (uint256) {
        return _members[account].orgId;
    }

    /// @inheritdoc IOrgRegistry
    function rolesOf(address account) external view returns (uint8) {
        return _members[account].roles;
    }

    /// @inheritdoc IOrgRegistry
    function hasOrgRole(uint256 orgId, address account, uint8 role) public view returns (bool) {
        return orgId != 0 && orgWithRole(account, role) == orgId;
    }

    /// @inheritdoc IOrgRegistry
    function orgWithRole(address account, uint8 role) public view returns (uint256) {
        Membership memory member = _members[account];
        if (role == 0 || member.roles & role != role || !isActive(member.orgId)) return 0;
        return member.orgId;
    }

    /// @inheritdoc IOrgRegistry
    function isActive(uint256 orgId) public view returns (bool) {
        return _orgs[orgId].status == OrgStatus.Active;
    }

    /// @dev Reverts unless `orgId` exists, `roles` is valid and the caller may grant or revoke `roles` in `orgId`.
    function _checkRoleManager(uint256 orgId, uint8 roles) private view {
        _requireOrg(orgId);
        if (roles == 0 || roles & ~ALL_ROLES != 0) revert OrgRegistryInvalidRoles(roles);
        if (hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) return;
        if (roles & ROLE_AUDITOR != 0 || !hasOrgRole(orgId, msg.sender, ROLE_ORG_ADMIN)) {
            revert OrgRegistryUnauthorized(msg.sender);
        }
    }

    function _requireOrg(uint256 orgId) private view {
        if (_orgs[orgId].status == OrgStatus.None) revert OrgRegistryUnknownOrg(orgId);
    }
}
