// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IGrantRegistry
 * @notice Authorisation layer (F3): standing grants that let an organisation use a dataset for some
 * computation kinds, and one-off approvals of a task input that is not covered by a grant.
 *
 * Computation kinds are bits: KIND_PSI = 1, KIND_PIR = 2, KIND_STATS = 4, KIND_FL = 8. Protocols are ids
 * 1..31, allowed as bits (`1 << id`) of a grant's `protocols`.
 * `grantId = keccak256(abi.encode(datasetId, granteeOrg, nonce))`, `nonce` being a counter of issued grants.
 *
 * Every grant carries terms: a canonical JSON document (columns and what may happen to each, outputs,
 * thresholds, set-size caps, prices, purpose) whose keccak256 is kept as `termsHash` and which is published
 * whole in {GrantIssued}, plus the terms this registry enforces itself: the computation kinds and protocols
 * allowed, the one organisation allowed to deal or aggregate for the grantee (0: none, ANY_DEALER: any), and
 * the fee floor, the least fee a task using the grant escrows. Provider nodes enforce the rest of the document.
 *
 * A grant may be derived under another, its parent (`parentGrant`): the owner's grant of a dataset derived from
 * the parent's dataset (see {IDataRegistry-parentsOf}) to the parent's grantee. It holds only while every
 * ancestor does (at most MAX_DERIVATIONS links up): a task under it is refused once an ancestor is revoked,
 * expired or used up, and counts against the uses of the grant and of every ancestor, so that a grant and
 * the grants derived under it share its uses.
 */
interface IGrantRegistry {
    enum ApprovalStatus {
        None,
        Pending,
        Approved,
        Rejected
    }

    /// @notice The terms of a grant this registry enforces (see the contract notice).
    struct Terms {
        uint8 kinds; // bitmask of allowed computation kinds
        uint32 protocols; // bitmask of allowed protocol ids
        uint32 dealer; // the organisation allowed to deal or aggregate: 0 for none, ANY_DEALER for any
        uint96 minFee; // the fee floor of a task using the grant
        uint64 expiry; // unusable from this timestamp on
        uint32 maxUses;
        bytes32 parentGrant; // the grant this one is derived under, 0 for none
    }

    struct Grant {
        bytes32 datasetId;
        uint256 granteeOrg;
        uint8 kinds; // bitmask of allowed computation kinds
        uint64 expiry; // unusable from this timestamp on
        uint32 maxUses;
        uint32 used;
        bool revoked;
        address grantor;
        uint32 protocols;
        uint32 dealer;
        uint96 minFee;
        bytes32 termsHash; // keccak256 of the terms document
        bytes32 parentGrant; // the grant this one is derived under, 0 for none
    }

    error GrantRegistryUnauthorized(address account);
    error GrantRegistryInvalidLedger(address ledger);
    error GrantRegistryUnknownGrant(bytes32 grantId);
    error GrantRegistryInvalidGrantee(uint256 granteeOrg);
    error GrantRegistryInvalidKinds(uint8 kinds);
    error GrantRegistryInvalidExpiry(uint64 expiry);
    error GrantRegistryInvalidMaxUses();
    error GrantRegistryDatasetRetired(bytes32 datasetId);
    error GrantRegistryRevoked(bytes32 grantId);
    error GrantRegistryExpired(bytes32 grantId);
    error GrantRegistryExhausted(bytes32 grantId);
    error GrantRegistryKindNotAllowed(bytes32 grantId, uint8 kind);
    error GrantRegistryInvalidProtocols(uint32 protocols);
    error GrantRegistryProtocolNotAllowed(bytes32 grantId, uint8 protocol);
    error GrantRegistryDealerNotAllowed(bytes32 grantId, uint256 dealer);
    error GrantRegistryEmptyTerms();
    error GrantRegistryMismatch(bytes32 grantId);
    error GrantRegistryNotPending(uint256 taskId, bytes32 datasetId);
    error GrantRegistryInvalidParent(bytes32 parentGrant);
    error GrantRegistryAncestorLapsed(bytes32 grantId, bytes32 ancestorId);

    /// @notice Emitted once, on construction, with the task ledger this registry serves.
    event TaskLedgerSet(address ledger);

    /// @notice Emitted when a grant is issued, with its whole terms document (`terms`, hashed as `termsHash`).
    event GrantIssued(
        bytes32 indexed grantId,
        bytes32 indexed datasetId,
        uint256 indexed granteeOrg,
        uint8 kinds,
        uint64 expiry,
        uint32 maxUses,
        uint32 protocols,
        uint32 dealer,
        uint96 minFee,
        bytes32 termsHash,
        string terms
    );

    /// @notice Emitted when a grant is revoked.
    event GrantRevoked(bytes32 indexed grantId);

    /// @notice Emitted when task `taskId` uses a grant; `used` is the number of uses so far.
    event GrantConsumed(uint256 indexed taskId, bytes32 indexed grantId, uint32 used);

    /**
     * @notice Emitted, after {GrantConsumed}, when task `taskId` uses `derivedGrantId`, a grant derived under
     * `grantId` (its parent, or a parent's parent...): the use counts against `grantId`'s uses too; `used` is the
     * number of its uses so far.
     */
    event DerivedUseCounted(uint256 indexed taskId, bytes32 indexed grantId, bytes32 derivedGrantId, uint32 used);

    /// @notice Emitted when task `taskId` asks the owner of `datasetId` to approve its use.
    event ApprovalRequested(uint256 indexed taskId, bytes32 indexed datasetId, uint256 indexed requesterOrg, uint8 kind);

    /// @notice Emitted when the owner of `datasetId` approves its use by task `taskId`.
    event InputApproved(uint256 indexed taskId, bytes32 indexed datasetId, address indexed approver);

    /// @notice Emitted when the owner of `datasetId` rejects its use by task `taskId`.
    event InputRejected(uint256 indexed taskId, bytes32 indexed datasetId, address indexed approver);

    /// @notice A grant's `dealer` allowing every organisation to deal or aggregate (2^32 - 1).
    function ANY_DEALER() external view returns (uint32);

    /// @notice Kind bit: private set intersection (1).
    function KIND_PSI() external view returns (uint8);

    /// @notice Kind bit: private information retrieval (2).
    function KIND_PIR() external view returns (uint8);

    /// @notice Kind bit: secure aggregate statistics (4).
    function KIND_STATS() external view returns (uint8);

    /// @notice Kind bit: federated learning (8).
    function KIND_FL() external view returns (uint8);

    /// @notice The most links from a grant up to the grant it is derived from at the root (8).
    function MAX_DERIVATIONS() external view returns (uint8);

    /**
     * @notice Grants organisation `granteeOrg` the use of `datasetId` under `terms` (the computation kinds and
     * protocols allowed, the dealer, the fee floor, at most `maxUses` times, until `expiry`) and the terms
     * document `termsDocument`, whose keccak256 becomes the grant's `termsHash`.
     * @dev Requirements: the dataset exists and is not retired; caller has ROLE_DATA_OWNER in the dataset's
     * owning organisation; `granteeOrg` is Active and is not the owning organisation; `kinds` is a non-zero
     * combination of the kind bits; `protocols` is non-zero without bit 0; `expiry` is in the future and
     * below 2^40; `maxUses` is non-zero; `termsDocument` is not empty. A derived grant (`parentGrant` non-zero,
     * else {GrantRegistryInvalidParent}): the parent exists, is for `granteeOrg`, is on a dataset of the same
     * owning organisation that is one of `datasetId`'s parents, allows every kind and protocol `terms` allows,
     * is at most MAX_DERIVATIONS - 1 links from its root, and neither it nor an ancestor is revoked, expired or
     * used up; `expiry` is at most the parent's ({GrantRegistryInvalidExpiry}). Emits {GrantIssued}.
     */
    function grant(bytes32 datasetId, uint256 granteeOrg, Terms calldata terms, string calldata termsDocument)
        external
        returns (bytes32 grantId);

    /**
     * @notice Revokes a grant.
     * @dev Requirements: the grant exists and is not revoked; caller has ROLE_DATA_OWNER in the dataset's
     * owning organisation. Emits {GrantRevoked}.
     */
    function revoke(bytes32 grantId) external;

    /**
     * @notice Uses a grant once for task `taskId`, of kind `kind` and protocol `protocol`, run by `granteeOrg` on
     * `datasetId` with `dealer` dealing or aggregating (0 for none); returns the grant's fee floor. A derived
     * grant's use counts against each ancestor's uses too.
     * @dev Requirements: caller is the task ledger; the grant exists, is for `datasetId` and `granteeOrg`,
     * is not revoked, not expired (`block.timestamp < expiry`), not exhausted, allows `kind` and `protocol`,
     * and `dealer` is 0 or the grant's dealer; no ancestor is revoked, expired or exhausted
     * ({GrantRegistryAncestorLapsed}). The task ledger refuses a retired dataset before it calls this.
     * Emits {GrantConsumed}, then {DerivedUseCounted} per ancestor.
     */
    function consume(
        uint256 taskId,
        bytes32 grantId,
        uint256 granteeOrg,
        bytes32 datasetId,
        uint8 kind,
        uint8 protocol,
        uint256 dealer
    ) external returns (uint256 minFee);

    /**
     * @notice Opens a request for the owner of `datasetId` to approve its use by task `taskId`.
     * @dev Requirements: caller is the task ledger. Emits {ApprovalRequested}.
     */
    function openRequest(uint256 taskId, bytes32 datasetId, uint256 requesterOrg, uint8 kind) external;

    /**
     * @notice Approves the use of `datasetId` by task `taskId`, then notifies the task ledger.
     * @dev Requirements: caller has ROLE_DATA_OWNER in the dataset's owning organisation; the request is
     * Pending; the dataset is not retired; the task ledger accepts the approval.
     * Emits {InputApproved}.
     */
    function approve(uint256 taskId, bytes32 datasetId) external;

    /**
     * @notice Rejects the use of `datasetId` by task `taskId`, then notifies the task ledger (which fails
     * the task).
     * @dev Requirements: caller has ROLE_DATA_OWNER in the dataset's owning organisation; the request is
     * Pending; the task ledger accepts the rejection. Emits {InputRejected}.
     */
    function reject(uint256 taskId, bytes32 datasetId) external;

    /// @notice Returns true iff {consume} would succeed with these arguments (caller check aside).
    function isUsable(bytes32 grantId, uint256 granteeOrg, bytes32 datasetId, uint8 kind)
        external
        view
        returns (bool);

    /// @notice Returns a grant. Reverts with {GrantRegistryUnknownGrant} if it does not exist.
    function getGrant(bytes32 grantId) external view returns (Grant memory);

    /// @notice Returns the status of the request for `datasetId` by task `taskId`.
    function approvalOf(uint256 taskId, bytes32 datasetId) external view returns (ApprovalStatus);

    /// @notice Returns the task ledger, the only caller of {consume} and {openRequest}, fixed on construction.
    function taskLedger() external view returns (address);
}
