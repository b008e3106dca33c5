// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IProjectRegistry
 * @notice Projects (F14): a named group of organisations and their datasets, owned by the organisation that
 * created it, with membership as an invitation workflow (F15).
 *
 * Project ids are sequential from 1. An organisation "manages" its side of a project through any account
 * holding ROLE_ORG_ADMIN or ROLE_OPERATOR in it while it is Active. Membership always takes both sides: the
 * owner organisation invites (and may withdraw the invitation), the invited organisation accepts or declines;
 * either side ends it (the member leaves, the owner removes it). The owner organisation is a member from
 * creation and can neither leave nor be removed. A dataset is in a project only while its owner organisation
 * is a member: a data owner of that organisation adds or removes it, and leaving or being removed takes the
 * organisation's datasets out. A closed project is frozen: every change reverts.
 */
interface IProjectRegistry {
    enum ProjectStatus {
        None,
        Active,
        Closed
    }

    enum MemberStatus {
        None,
        Invited,
        Member
    }

    struct Project {
        string name;
        uint256 ownerOrg;
        ProjectStatus status;
        uint64 createdAt;
    }

    struct Membership {
        uint256 org;
        MemberStatus status;
    }

    error ProjectRegistryUnauthorized(address account);
    error ProjectRegistryUnknownProject(uint256 projectId);
    error ProjectRegistryInvalidName();
    error ProjectRegistryClosed(uint256 projectId);
    error ProjectRegistryInvalidOrg(uint256 org);
    error ProjectRegistryAlreadyListed(uint256 projectId, uint256 org);
    error ProjectRegistryNotInvited(uint256 projectId, uint256 org);
    error ProjectRegistryNotMember(uint256 projectId, uint256 org);
    error ProjectRegistryOwnerOrg(uint256 projectId, uint256 org);
    error ProjectRegistryTooManyMembers(uint256 projectId);
    error ProjectRegistryTooManyDatasets(uint256 projectId);
    error ProjectRegistryDatasetRetired(bytes32 datasetId);
    error ProjectRegistryDatasetAlreadyAdded(uint256 projectId, bytes32 datasetId);
    error ProjectRegistryDatasetNotAdded(uint256 projectId, bytes32 datasetId);

    /// @notice Emitted when `account` creates project `projectId`, owned by (and with the member) `ownerOrg`.
    event ProjectCreated(uint256 indexed projectId, uint256 indexed ownerOrg, string name, address account);

    /// @notice Emitted when the owner organisation, through `account`, invites `org` to the project.
    event ProjectMemberInvited(uint256 indexed projectId, uint256 indexed org, address account);

    /// @notice Emitted when the owner organisation, through `account`, withdraws its invitation of `org`.
    event ProjectInvitationWithdrawn(uint256 indexed projectId, uint256 indexed org, address account);

    /// @notice Emitted when `org`, through `account`, accepts its invitation and becomes a member.
    event ProjectInvitationAccepted(uint256 indexed projectId, uint256 indexed org, address account);

    /// @notice Emitted when `org`, through `account`, declines its invitation.
    event ProjectInvitationDeclined(uint256 indexed projectId, uint256 indexed org, address account);

    /// @notice Emitted when member `org`, through `account`, leaves the project.
    event ProjectMemberLeft(uint256 indexed projectId, uint256 indexed org, address account);

    /// @notice Emitted when the owner organisation, through `account`, removes member `org`.
    event ProjectMemberRemoved(uint256 indexed projectId, uint256 indexed org, address account);

    /// @notice Emitted when dataset `datasetId` of `ownerOrg` joins the project.
    event ProjectDatasetAdded(uint256 indexed projectId, bytes32 indexed datasetId, uint256 indexed ownerOrg);

    /// @notice Emitted when dataset `datasetId` of `ownerOrg` leaves the project (also when its owner does).
    event ProjectDatasetRemoved(uint256 indexed projectId, bytes32 indexed datasetId, uint256 indexed ownerOrg);

    /// @notice Emitted when the owner organisation, through `account`, closes the project.
    event ProjectClosed(uint256 indexed projectId, address account);

    /**
     * @notice Creates an Active project owned by the caller's organisation, which becomes its first member.
     * @dev Requirements: caller has ROLE_ORG_ADMIN or ROLE_OPERATOR in an Active organisation; `name` is 1 to
     * MAX_NAME_BYTES bytes (names need not be unique). Emits {ProjectCreated}.
     */
    function createProject(string calldata name) external returns (uint256 projectId);

    /**
     * @notice Invites organisation `org` to an Active project.
     * @dev Requirements: the project exists and is Active; caller manages its owner organisation; `org` is
     * Active and neither invited nor a member; fewer than MAX_MEMBERS organisations are invited or members.
     * Emits {ProjectMemberInvited}.
     */
    function invite(uint256 projectId, uint256 org) external;

    /**
     * @notice Withdraws the invitation of `org`.
     * @dev Requirements: the project exists and is Active; caller manages its owner organisation; `org` is
     * invited. Emits {ProjectInvitationWithdrawn}.
     */
    function withdrawInvitation(uint256 projectId, uint256 org) external;

    /**
     * @notice Accepts the invitation of the caller's organisation, which becomes a member.
     * @dev Requirements: the project exists and is Active; caller manages an organisation that is invited.
     * Emits {ProjectInvitationAccepted}.
     */
    function acceptInvitation(uint256 projectId) external;

    /**
     * @notice Declines the invitation of the caller's organisation.
     * @dev Requirements: as {acceptInvitation}. Emits {ProjectInvitationDeclined}.
     */
    function declineInvitation(uint256 projectId) external;

    /**
     * @notice Takes the caller's organisation, and its datasets, out of the project.
     * @dev Requirements: the project exists and is Active; caller manages a member organisation that is not
     * the owner. Emits {ProjectDatasetRemoved} per dataset of the organisation, then {ProjectMemberLeft}.
     */
    function leaveProject(uint256 projectId) external;

    /**
     * @notice Takes member `org`, and its datasets, out of the project.
     * @dev Requirements: the project exists and is Active; caller manages its owner organisation; `org` is a
     * member other than the owner. Emits {ProjectDatasetRemoved} per dataset of `org`, then
     * {ProjectMemberRemoved}.
     */
    function removeMember(uint256 projectId, uint256 org) external;

    /**
     * @notice Adds a dataset to the project.
     * @dev Requirements: the project exists and is Active; the dataset is registered (else the
     * DataRegistry's {DataRegistryUnknownDataset}) and not retired; caller has ROLE_DATA_OWNER in the
     * dataset's owner organisation, which is a member; the dataset is not in the project yet; the project has
     * fewer than MAX_DATASETS datasets. Emits {ProjectDatasetAdded}.
     */
    function addDataset(uint256 projectId, bytes32 datasetId) external;

    /**
     * @notice Removes a dataset from the project.
     * @dev Requirements: the project exists and is Active; the dataset is in the project; caller has
     * ROLE_DATA_OWNER in the dataset's owner organisation. Emits {ProjectDatasetRemoved}.
     */
    function removeDataset(uint256 projectId, bytes32 datasetId) external;

    /**
     * @notice Closes the project for good; members and datasets stay readable.
     * @dev Requirements: the project exists and is Active; caller manages its owner organisation.
     * Emits {ProjectClosed}.
     */
    function closeProject(uint256 projectId) external;

    /// @notice Returns project `projectId`. Reverts with {ProjectRegistryUnknownProject} if it does not exist.
    function getProject(uint256 projectId) external view returns (Project memory);

    /// @notice Returns the number of projects (which is also the highest projectId).
    function projectCount() external view returns (uint256);

    /// @notice Returns the membership status of `org` in the project (None for an unknown project).
    function statusOf(uint256 projectId, uint256 org) external view returns (MemberStatus);

    /// @notice Returns every invited or member organisation of the project, owner first.
    function membersOf(uint256 projectId) external view returns (Membership[] memory);

    /// @notice Returns the datasets in the project.
    function datasetsOf(uint256 projectId) external view returns (bytes32[] memory);

    /// @notice Returns true iff `datasetId` is in the project.
    function hasDataset(uint256 projectId, bytes32 datasetId) external view returns (bool);
}
