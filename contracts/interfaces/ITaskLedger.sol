// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title ITaskLedger
 * @notice Task ledger (F4): submission, authorisation, execution reports, completion and settlement of
 * privacy-preserving computations.
 *
 * Lifecycle: Submitted (waiting for input approvals) -> Authorised -> Running -> Completed -> Settled.
 * A task not yet Completed can fail (worker report, rejected input, or expiry); its fee is then refunded.
 *
 * Settlement a requester cannot dodge. The providers of a task are the participants other than the requester
 * organisation owning an input; each anchors, with its result, the usage units it is paid for. Once a provider
 * has anchored -- or has recorded with {recordDelivery} that it hands the requester its output before it can
 * anchor -- nobody can fail the task: the fee then goes to the providers that anchored or recorded a delivery,
 * by {settleTask} (any participant, once
 * Completed) or by {expireTask} (anyone, after the deadline, even if the requester never anchored). The split is computed here
 * from the anchored units and each foreign input's charge ({chargesOf}): its unit price, row count and upstream share
 * as the DataRegistry had them at submission -- a unit price changed later does not move the split, and an input
 * weighs at most its registered rows however many units its owner anchors -- so what a provider checked against
 * its price before its output left is what it is paid. The requester organisation is never paid for its own
 * inputs (with no foreign input the fee is refunded).
 *
 * Failure reasons (16 bits): 1 = input rejected, 2 = expired (both set by the ledger); 3..99 are worker-reported,
 * e.g. 3 = spec hash mismatch, 4 = grant invalid, 5 = protocol error, 6 = peer unreachable,
 * 7 = policy violation.
 */
interface ITaskLedger {
    enum TaskStatus {
        None,
        Submitted,
        Authorised,
        Running,
        Completed,
        Failed,
        Settled
    }

    struct Task {
        bytes32 specHash;
        uint8 kind; // a single computation kind bit
        uint8 protocol; // the protocol id, 1..MAX_PROTOCOL
        TaskStatus status;
        uint256 requesterOrg;
        address requester;
        uint64 submittedAt;
        uint64 deadline;
        uint16 pendingApprovals;
        uint16 anchoredCount;
        uint32 failureReason;
        uint256 fee;
        bytes32[] inputs;
        uint256[] participants;
    }

    /**
     * @notice What settlement weighs a foreign input by: `min(units, maxUnits) * unitPrice`, of which the
     * `upstreamBps` share goes to the owners of its parents. Fixed at submission but for `units`.
     */
    struct InputCharge {
        bytes32 datasetId;
        uint256 ownerOrg;
        uint128 unitPrice; // the dataset's price per row when the task was submitted
        uint32 maxUnits; // its registered row count (capped at 2^32 - 1, the most units anchored): the most it weighs
        uint16 upstreamBps; // the share of its earnings passed to its parents' owners
        uint32 units; // the units its owner anchored (0 until it anchors)
    }

    error TaskLedgerUnauthorized(address account);
    error TaskLedgerOnlyGrantRegistry(address account);
    error TaskLedgerOnlyMetering(address account);
    error TaskLedgerUnknownTask(uint256 taskId);
    error TaskLedgerInvalidKind(uint8 kind);
    error TaskLedgerInvalidProtocol(uint8 protocol);
    error TaskLedgerFeeBelowFloor(uint256 fee, uint256 floor);
    error TaskLedgerDelivered(uint256 taskId);
    error TaskLedgerDealerNotPublished(uint256 orgId);
    error TaskLedgerInvalidInputs();
    error TaskLedgerInvalidParticipants();
    error TaskLedgerMissingOwnerParticipant(bytes32 datasetId);
    error TaskLedgerInputRetired(bytes32 datasetId);
    error TaskLedgerInvalidDeadline(uint64 deadline);
    error TaskLedgerInvalidStatus(uint256 taskId, TaskStatus status);
    error TaskLedgerDeadlinePassed(uint256 taskId);
    error TaskLedgerAlreadyAnchored(uint256 taskId, uint256 orgId);
    error TaskLedgerEmptyDigest();
    error TaskLedgerInvalidReason(uint32 reasonCode);
    error TaskLedgerNotExpirable(uint256 taskId);
    error TaskLedgerNotAnchored(uint256 taskId, uint256 orgId);
    error TaskLedgerAbsenceGrace(uint256 taskId, uint64 notBefore);
    error TaskLedgerNotProvider(uint256 taskId, uint256 orgId);

    /// @notice Emitted when a task is submitted; `fee` is the value escrowed with it.
    event TaskSubmitted(
        uint256 indexed taskId, uint256 indexed requesterOrg, bytes32 specHash, uint8 kind, uint256 fee, uint64 deadline
    );

    /// @notice Emitted when every input of a task is authorised.
    event TaskAuthorised(uint256 indexed taskId);

    /// @notice Emitted when a participant moves an Authorised task to Running.
    event TaskStarted(uint256 indexed taskId, uint256 indexed org);

    /**
     * @notice Emitted when participant `org` anchors its result for a task. The ledger stores only
     * `keccak256(abi.encode(resultDigest, transcriptHash))` (see {anchorOf}, {verifyAnchor}); the anchoring
     * time is the timestamp of the block holding this event.
     */
    event ResultAnchored(
        uint256 indexed taskId, uint256 indexed org, bytes32 resultDigest, bytes32 transcriptHash, uint32 units
    );

    /// @notice Emitted when every participant has anchored its result.
    event TaskCompleted(uint256 indexed taskId);

    /**
     * @notice Emitted when participant `reporter`, having anchored, reports that the participants that have not
     * anchored (bit i of `absentSeats` for participant i) are absent; they have {ABSENCE_GRACE} to anchor.
     */
    event AbsenceReported(uint256 indexed taskId, uint256 indexed reporter, uint16 absentSeats);

    /**
     * @notice Emitted when provider `org` records that what it sends next gives the requester its output
     * (before the provider can anchor): from then on the requester organisation cannot fail the task.
     */
    event DeliveryRecorded(uint256 indexed taskId, uint256 indexed org);

    /// @notice Emitted, before {TaskCompleted}, for each participant a task completed without.
    event ParticipantAbsent(uint256 indexed taskId, uint256 indexed org);

    /// @notice Emitted when a task fails; `org` is the reporting participant, 0 when set by the ledger.
    event TaskFailed(uint256 indexed taskId, uint256 indexed org, uint32 reasonCode);

    /// @notice Emitted when a task is closed after its deadline.
    event TaskExpired(uint256 indexed taskId);

    /**
     * @notice Emitted when a task is settled (its fee allocated, or refunded by a default settlement), before
     * the Metering's {IMetering-FeeAllocated} or {IMetering-FeeRefunded} events. The provenance hash is kept
     * in this event only (0 for a default settlement).
     */
    event TaskSettled(uint256 indexed taskId, bytes32 provenanceHash, uint256 fee);

    /// @notice Failure reason set when a data owner rejects an input (1).
    function REASON_REJECTED() external view returns (uint32);

    /// @notice Failure reason set when an unfinished task passes its deadline (2).
    function REASON_EXPIRED() external view returns (uint32);

    /**
     * @notice Submits a task and escrows `msg.value` as its fee. Each input is authorised by the requester
     * owning it, by consuming `grantIds[i]`, or, when `grantIds[i]` is zero, by a request to its owner
     * (the task then waits in Submitted until every request is approved).
     * @dev Requirements: caller has ROLE_OPERATOR in an Active organisation (the requester organisation);
     * `kind` is exactly one computation kind bit; `protocol` is 1..MAX_PROTOCOL; `inputs` is non-empty, at
     * most MAX_INPUTS, without duplicates, of registered datasets none of which is retired; `grantIds` has the
     * length of `inputs` and every non-zero grant is usable for `kind`, `protocol` and the dealer (the one
     * participant other than the requester organisation that owns no input, if any); `participants` is
     * non-empty, at most MAX_PARTICIPANTS, without duplicates, of Active organisations, includes the requester
     * organisation and the owner of every input, and at most one other, which publishes a dealer service
     * ({IOrgRegistry-isDealer}); `msg.value` is at least the sum of
     * the used grants' fee floors; `deadline` is in the future and at most MAX_DURATION away.
     * Fixes each foreign input's charge ({chargesOf}) as the DataRegistry has it now.
     * Emits {TaskSubmitted}, and {TaskAuthorised} when no approval is pending.
     */
    function submitTask(
        bytes32 specHash,
        uint8 kind,
        uint8 protocol,
        bytes32[] calldata inputs,
        bytes32[] calldata grantIds,
        uint256[] calldata participants,
        uint64 deadline
    ) external payable returns (uint256 taskId);

    /**
     * @notice Called by the GrantRegistry when one pending input is approved; the last approval
     * authorises the task.
     * @dev Requirements: caller is the GrantRegistry; the task is Submitted.
     * Emits {TaskAuthorised} on the last approval.
     */
    function onInputApproved(uint256 taskId) external;

    /**
     * @notice Called by the GrantRegistry when an input is rejected: the task fails and its fee is refunded.
     * @dev Requirements: caller is the GrantRegistry; the task is Submitted.
     * Emits {TaskFailed} with org 0 and reason REASON_REJECTED.
     */
    function onInputRejected(uint256 taskId) external;

    /**
     * @notice Marks an Authorised task as Running. Idempotent: a call on a Running task does nothing, so
     * every participant's worker may call it.
     * @dev Requirements: caller has ROLE_OPERATOR in an Active participant organisation; the task is
     * Authorised or Running. Emits {TaskStarted} on the transition.
     */
    function startTask(uint256 taskId) external;

    /**
     * @notice Anchors the caller organisation's result for a task, with the usage `units` it is paid for if it
     * is a provider (ignored otherwise; each of its inputs weighs at most its `maxUnits`, see {chargesOf}); the last
     * participant's anchor completes the task.
     * @dev Requirements: caller has ROLE_OPERATOR in an Active participant organisation that did not anchor
     * yet; the task is Authorised or Running; its deadline has not passed; `resultDigest` is non-zero.
     * Emits {ResultAnchored}, and {TaskCompleted} on the last anchor.
     */
    function anchorResult(uint256 taskId, bytes32 resultDigest, bytes32 transcriptHash, uint32 units) external;

    /**
     * @notice Records that the caller organisation, a provider, is about to hand the requester its output (or
     * part of it) while the provider cannot anchor yet: it learns its own output afterwards (an intersection
     * revealed to both), or sends the output in parts (a bucketed PSI). From then on no participant can fail the
     * task -- the requester may hold that output, and an honest participant that the requester's abort ends
     * would otherwise refund it -- and after the deadline {expireTask} settles it to the providers that
     * anchored. Idempotent: a second call does nothing.
     * @dev Requirements: caller has ROLE_OPERATOR in an Active participant organisation that owns an input and
     * is not the requester organisation ({TaskLedgerNotProvider}); the task is Authorised or Running; its
     * deadline has not passed. Emits {DeliveryRecorded} on the first call.
     */
    function recordDelivery(uint256 taskId) external;

    /// @notice Returns the seats of the providers that recorded a delivery (bit i for participant i).
    function deliveriesOf(uint256 taskId) external view returns (uint16 seats);

    /**
     * @notice Reports a task as failed; its fee is refunded to the requester organisation.
     * @dev Requirements: caller has ROLE_OPERATOR in an Active participant organisation; the task is
     * Submitted, Authorised or Running; `reasonCode` is 1..65535; no provider has recorded a delivery or
     * anchored ({TaskLedgerDelivered}): a provider anchors before its last messages leave, so the requester may
     * hold its output, and another participant -- a second provider the requester controls, or an honest one
     * whose run the requester's abort ended -- must not refund it. The task then completes without the parties
     * that stay away ({reportAbsence}) or settles at its deadline ({expireTask}).
     * Emits {TaskFailed}.
     */
    function failTask(uint256 taskId, uint32 reasonCode) external;

    /**
     * @notice Completes a task without the participants that dropped out. A participant that anchored reports
     * the others that have not as absent; once the same participants have stayed unanchored for
     * {ABSENCE_GRACE} after that report, a second call completes the task. An absent participant is paid
     * nothing (but see below), so a live one keeps its pay by anchoring within
     * the grace, which any anchor does: it ends the report (a new one starts the grace again) or completes
     * the task. Used when a protocol finishes without a party (horizontal FL after a client drops out), and by
     * a provider whose requester never anchors.
     * A provider that recorded a delivery ({recordDelivery}) stays a payee when absent, with the units it
     * anchored (none): a requester that holds its output and completes the task without it while it still
     * waits for the requester's last messages pays it all the same (the whole fee when no provider earned any
     * units, as {settleTask} splits a fee nobody earned).
     * @dev Requirements: caller has ROLE_OPERATOR in an Active participant organisation that anchored
     * ({TaskLedgerNotAnchored}); the task is Authorised or Running; its deadline has not passed; a completing
     * call comes at least {ABSENCE_GRACE} after the report ({TaskLedgerAbsenceGrace}).
     * Emits {AbsenceReported}; or {ParticipantAbsent} per absent participant, then {TaskCompleted}.
     */
    function reportAbsence(uint256 taskId) external;

    /// @notice How long the participants reported absent have to anchor before a task completes without them.
    function ABSENCE_GRACE() external view returns (uint64);

    /**
     * @notice Returns the absence report of a task: the seats reported absent (bit i for participant i, 0 for no
     * report) and when.
     */
    function absenceOf(uint256 taskId) external view returns (uint16 absentSeats, uint64 reportedAt);

    /**
     * @notice Settles a Completed task: the fee is allocated to the providers that anchored as the contract notice
     * says;
     * `provenanceHash` is the hash of the settling participant's provenance record, kept in {TaskSettled}.
     * @dev Requirements: caller has ROLE_OPERATOR in an Active participant organisation; the task is Completed.
     * Emits {TaskSettled}, then the Metering's {IMetering-FeeAllocated} or {IMetering-FeeRefunded} events.
     */
    function settleTask(uint256 taskId, bytes32 provenanceHash) external;

    /**
     * @notice Closes a task whose deadline has passed. A Completed task, or an unfinished one that a provider
     * anchored or in which a provider recorded a delivery (which nobody could fail any more), is settled with provenance hash 0 as {settleTask}
     * does (to the providers that anchored or recorded a delivery; refunded if none did). Any other unfinished task fails with
     * REASON_EXPIRED and its fee is refunded.
     * @dev Requirements: `block.timestamp >= deadline`; the task is Submitted, Authorised, Running or
     * Completed. Emits {TaskFailed} (org 0) and {TaskExpired}, or {TaskExpired} and {TaskSettled}.
     */
    function expireTask(uint256 taskId) external;

    /// @notice Returns a task. Reverts with {TaskLedgerUnknownTask} if it does not exist.
    function getTask(uint256 taskId) external view returns (Task memory);

    /// @notice Returns the number of submitted tasks (which is also the highest taskId).
    function taskCount() external view returns (uint256);

    /**
     * @notice Returns the commitment `keccak256(abi.encode(resultDigest, transcriptHash))` anchored by
     * organisation `orgId` for a task; 0 if none. The digests themselves are in {ResultAnchored}.
     */
    function anchorOf(uint256 taskId, uint256 orgId) external view returns (bytes32 commitment);

    /// @notice Returns true iff organisation `orgId` anchored exactly `resultDigest` and `transcriptHash`.
    function verifyAnchor(uint256 taskId, uint256 orgId, bytes32 resultDigest, bytes32 transcriptHash)
        external
        view
        returns (bool);

    /// @notice Returns the usage units organisation `orgId` anchored for a task as a provider (0 otherwise), as
    /// anchored: above an input's `maxUnits` they weigh no more ({chargesOf}).
    function unitsOf(uint256 taskId, uint256 orgId) external view returns (uint256);

    /**
     * @notice Returns the charges of a task's foreign inputs (see {InputCharge}), in input order: what its
     * settlement weighs them by, which a provider holds the fee to before its output leaves.
     * Reverts with {TaskLedgerUnknownTask}.
     */
    function chargesOf(uint256 taskId) external view returns (InputCharge[] memory charges);

    /**
     * @notice Returns the fee a task holds in escrow: its fee until it is settled or fails (refunded), then 0.
     * The ledger holds the escrowed ether; see {IMetering} for the balances it is credited to.
     */
    function escrowOf(uint256 taskId) external view returns (uint256);

    /// @notice Returns whether a task is settled; its provenance hash is in {TaskSettled}.
    function settlementOf(uint256 taskId) external view returns (bool settled);

    /**
     * @notice Sends `amount` wei of the ledger's ether to `to`, for a withdrawal the Metering has debited.
     * @dev Requirements: caller is the Metering. Returns false, instead of reverting, when `to` refuses the
     * transfer, so that the Metering reports it with its own error.
     */
    function disburse(address payable to, uint256 amount) external returns (bool success);

    /// @notice Returns true iff `orgId` is a participant of the task.
    function isParticipant(uint256 taskId, uint256 orgId) external view returns (bool);
}
