// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IDataRegistry} from "./interfaces/IDataRegistry.sol";
import {IOrgRegistry} from "./interfaces/IOrgRegistry.sol";
import {IProjectRegistry} from "./interfaces/IProjectRegistry.sol";
import {Roles} from "./Roles.sol";

/**
 * @title ProjectRegistry
 * @notice Projects (F14) and their membership workflow (F15) in privledger. See {IProjectRegistry}.
 * @dev Members and datasets are kept in enumerable sets, bounded so that leaving (which walks the datasets)
 * always fits in a block.
 */
contract ProjectRegistry is IProjectRegistry {
    using EnumerableSet for EnumerableSet.UintSet;
    using EnumerableSet for EnumerableSet.Bytes32Set;

    uint256 public constant MAX_NAME_BYTES = 100;
    uint256 public constant MAX_MEMBERS = 32; // invited and member organisations together
    uint256 public constant MAX_DATASETS = 64;

    struct Record {
        uint64 ownerOrg;
        uint64 createdAt;
        ProjectStatus status;
        string name;
        EnumerableSet.UintSet orgs; // invited and member organisations, owner first
        mapping(uint256 org => MemberStatus) memberStatus;
        EnumerableSet.Bytes32Set datasets;
        mapping(bytes32 datasetId => uint256 ownerOrg) datasetOwner;
    }

    IOrgRegistry private immutable _orgs;
    IDataRegistry private immutable _data;
    uint256 private _projectCount;
    mapping(uint256 projectId => Record) private _projects;

    constructor(IOrgRegistry orgs, IDataRegistry data) {
        _orgs = orgs;
        _data = data;
    }

    /// @inheritdoc IProjectRegistry
    function createProject(string calldata name) external returns (uint256 projectId) {
        uint256 ownerOrg = _managedOrg();
        uint256 length = bytes(name).length;
        if (length == 0 || length > MAX_NAME_BYTES) revert ProjectRegistryInvalidName();

        projectId = ++_projectCount;
        Record storage project = _projects[projectId];
        project.ownerOrg = SafeCast.toUint64(ownerOrg);
        project.createdAt = SafeCast.toUint64(block.timestamp);
        project.status = ProjectStatus.Active;
        project.name = name;
        project.orgs.add(ownerOrg);
        project.memberStatus[ownerOrg] = MemberStatus.Member;
        emit ProjectCreated(projectId, ownerOrg, name, msg.sender);
    }

    /// @inheritdoc IProjectRegistry
    function invite(uint256 projectId, uint256 org) external {
        Record storage project = _ownedProject(projectId);
        if (!_orgs.isActive(org)) revert ProjectRegistryInvalidOrg(org);
        if (project.memberStatus[org] != MemberStatus.None) revert ProjectRegistryAlreadyListed(projectId, org);
        if (project.orgs.length() >= MAX_MEMBERS) revert ProjectRegistryTooManyMembers(projectId);

        project.orgs.add(org);
        project.memberStatus[org] = MemberStatus.Invited;
        emit ProjectMemberInvited(projectId, org, msg.sender);
    }

    /// @inheritdoc IProjectRegistry
    function withdrawInvitation(uint256 projectId, uint256 org) external {
        Record storage project = _ownedProject(projectId);
        if (project.memberStatus[org] != MemberStatus.Invited) revert ProjectRegistryNotInvited(projectId, org);

        _drop(project, org);
        emit ProjectInvitationWithdrawn(projectId, org, msg.sender);
    }

    /// @inheritdoc IProjectRegistry
    function acceptInvitation(uint256 projectId) external {
        (Record storage project, uint256 org) = _invitedProject(projectId);
        project.memberStatus[org] = MemberStatus.Member;
        emit ProjectInvitationAccepted(projectId, org, msg.sender);
    }

    /// @inheritdoc IProjectRegistry
    function declineInvitation(uint256 projectId) external {
        (Record storage project, uint256 org) = _invitedProject(projectId);
        _drop(project, org);
        emit ProjectInvitationDeclined(projectId, org, msg.sender);
    }

    /// @inheritdoc IProjectRegistry
    function leaveProject(uint256 projectId) external {
        Record storage project = _activeProject(projectId);
        uint256 org = _managedOrg();
        _checkNonOwnerMember(projectId, project, org);

        _dropMember(projectId, project, org);
        emit ProjectMemberLeft(projectId, org, msg.sender);
    }

    /// @inheritdoc IProjectRegistry
    function removeMember(uint256 projectId, uint256 org) external {
        Record storage project = _ownedProject(projectId);
        _checkNonOwnerMember(projectId, project, org);

        _dropMember(projectId, project, org);
        emit ProjectMemberRemoved(projectId, org, msg.sender);
    }

    /// @inheritdoc IProjectRegistry
    function addDataset(uint256 projectId, bytes32 datasetId) external {
        Record storage project = _activeProject(projectId);
        uint256 ownerOrg = _data.ownerOf(datasetId);
        if (!_orgs.hasOrgRole(ownerOrg, msg.sender, Roles.DATA_OWNER)) revert ProjectRegistryUnauthorized(msg.sender);
        if (_data.isRetired(datasetId)) revert ProjectRegistryDatasetRetired(datasetId);
        if (project.memberStatus[ownerOrg] != MemberStatus.Member) {
            revert ProjectRegistryNotMember(projectId, ownerOrg);
        }
        if (project.datasets.contains(datasetId)) revert ProjectRegistryDatasetAlreadyAdded(projectId, datasetId);
        if (project.datasets.length() >= MAX_DATASETS) revert ProjectRegistryTooManyDatasets(projectId);

        project.datasets.add(datasetId);
        project.datasetOwner[datasetId] = ownerOrg;
        emit ProjectDatasetAdded(projectId, datasetId, ownerOrg);
    }

    /// @inheritdoc IProjectRegistry
    function removeDataset(uint256 projectId, bytes32 datasetId) external {
        Record storage project = _activeProject(projectId);
        if (!project.datasets.contains(datasetId)) revert ProjectRegistryDatasetNotAdded(projectId, datasetId);
        uint256 ownerOrg = project.datasetOwner[datasetId];
        if (!_orgs.hasOrgRole(ownerOrg, msg.sender, Roles.DATA_OWNER)) revert ProjectRegistryUnauthorized(msg.sender);

        project.datasets.remove(datasetId);
        delete project.datasetOwner[datasetId];
        emit ProjectDatasetRemoved(projectId, datasetId, ownerOrg);
    }

    /// @inheritdoc IProjectRegistry
    function closeProject(uint256 projectId) external {
        Record storage project = _ownedProject(projectId);
        project.status = ProjectStatus.Closed;
        emit ProjectClosed(projectId, msg.sender);
    }

    /// @inheritdoc IProjectRegistry
    function getProject(uint256 projectId) external view returns (Project memory) {
        Record storage project = _project(projectId);
        return Project({
            name: project.name,
            ownerOrg: project.ownerOrg,
            status: project.status,
            createdAt: project.createdAt
        });
    }

    /// @inheritdoc IProjectRegistry
    function projectCount() external view returns (uint256) {
        return _projectCount;
    }

    /// @inheritdoc IProjectRegistry
    function statusOf(uint256 projectId, uint256 org) external view returns (MemberStatus) {
        return _projects[projectId].memberStatus[org];
    }

    /// @inheritdoc IProjectRegistry
    function membersOf(uint256 projectId) external view returns (Membership[] memory members) {
        Record storage project = _projects[projectId];
        uint256 count = project.orgs.length();
        members = new Membership[](count);
        for (uint256 i = 0; i < count; ++i) {
            uint256 org = project.orgs.at(i);
            members[i] = Membership({org: org, status: project.memberStatus[org]});
        }
    }

    /// @inheritdoc IProjectRegistry
    function datasetsOf(uint256 projectId) external view returns (bytes32[] memory) {
        return _projects[projectId].datasets.values();
    }

    /// @inheritdoc IProjectRegistry
    function hasDataset(uint256 projectId, bytes32 datasetId) external view returns (bool) {
        return _projects[projectId].datasets.contains(datasetId);
    }

    /// @dev The Active organisation the caller manages (as org admin or operator); reverts if none.
    function _managedOrg() private view returns (uint256 org) {
        org = _orgs.orgWithRole(msg.sender, Roles.ORG_ADMIN);
        if (org == 0) org = _orgs.orgWithRole(msg.sender, Roles.OPERATOR);
        if (org == 0) revert ProjectRegistryUnauthorized(msg.sender);
    }

    function _project(uint256 projectId) private view returns (Record storage project) {
        project = _projects[projectId];
        if (project.status == ProjectStatus.None) revert ProjectRegistryUnknownProject(projectId);
    }

    function _activeProject(uint256 projectId) private view returns (Record storage project) {
        project = _project(projectId);
        if (project.status != ProjectStatus.Active) revert ProjectRegistryClosed(projectId);
    }

    /// @dev An Active project whose owner organisation the caller manages.
    function _ownedProject(uint256 projectId) private view returns (Record storage project) {
        project = _activeProject(projectId);
        if (_managedOrg() != project.ownerOrg) revert ProjectRegistryUnauthorized(msg.sender);
    }

    /// @dev An Active project that invited the organisation the caller manages, and that organisation.
    function _invitedProject(uint256 projectId) private view returns (Record storage project, uint256 org) {
        project = _activeProject(projectId);
        org = _managedOrg();
        if (project.memberStatus[org] != MemberStatus.Invited) revert ProjectRegistryNotInvited(projectId, org);
    }

    function _checkNonOwnerMember(uint256 projectId, Record storage project, uint256 org) private view {
        if (org == project.ownerOrg) revert ProjectRegistryOwnerOrg(projectId, org);
        if (project.memberStatus[org] != MemberStatus.Member) revert ProjectRegistryNotMember(projectId, org);
    }

    function _drop(Record storage project, uint256 org) private {
        project.orgs.remove(org);
        delete project.memberStatus[org];
    }

    /// @dev Drops a member and takes its datasets out of the project (walking the set backwards, as
    /// `remove` moves the last element into the freed slot).
    function _dropMember(uint256 projectId, Record storage project, uint256 org) private {
        for (uint256 i = project.datasets.length(); i > 0; --i) {
            bytes32 datasetId = project.datasets.at(i - 1);
            if (project.datasetOwner[datasetId] == org) {
                project.datasets.remove(datasetId);
                delete project.datasetOwner[datasetId];
                emit ProjectDatasetRemoved(projectId, datasetId, org);
            }
        }
        _drop(project, org);
    }
}
