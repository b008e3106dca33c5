// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IMetering
 * @notice Metering and settlement layer (F6): task fee escrow, dataset usage counters, fee allocation to
 * organisations and withdrawal of their balances (pull payments).
 *
 * Every state-changing function but {withdraw} is restricted to the task ledger.
 */
interface IMetering {
    error MeteringUnauthorized(address account);
    error MeteringLedgerAlreadySet();
    error MeteringInvalidLedger(address ledger);
    error MeteringAlreadyEscrowed(uint256 taskId);
    error MeteringNotEscrowed(uint256 taskId);
    error MeteringAlreadySettled(uint256 taskId);
    error MeteringInvalidWeights();
    error MeteringUnknownOrg(uint256 orgId);
    error MeteringInvalidRecipient(address to);
    error MeteringInsufficientBalance(uint256 orgId, uint256 balance, uint256 amount);
    error MeteringTransferFailed(address to, uint256 amount);

    /// @notice Emitted once, when the task ledger is wired.
    event TaskLedgerSet(address ledger);

    /// @notice Emitted when the fee of a task is put in escrow.
    event FeeEscrowed(uint256 indexed taskId, uint256 indexed payerOrg, uint256 amount);

    /// @notice Emitted when an authorised task uses a dataset; `count` is its usage count so far.
    event UsageRecorded(uint256 indexed taskId, bytes32 indexed datasetId, uint256 count);

    /// @notice Emitted for each payee when a task is settled.
    event FeeAllocated(uint256 indexed taskId, uint256 indexed payeeOrg, uint256 amount);

    /// @notice Emitted when a task is settled, after its {FeeAllocated} events.
    event TaskSettled(uint256 indexed taskId, bytes32 provenanceHash, uint256 fee);

    /// @notice Emitted when a task's fee is credited back to its payer organisation.
    event FeeRefunded(uint256 indexed taskId, uint256 indexed payerOrg, uint256 amount);

    /// @notice Emitted when an organisation's balance is withdrawn.
    event Withdrawn(uint256 indexed orgId, address indexed to, uint256 amount);

    /**
     * @notice Wires the task ledger.
     * @dev Requirements: caller is the consortium admin (DEFAULT_ADMIN_ROLE on the OrgRegistry); the ledger
     * is not set yet; `ledger` is non-zero. Emits {TaskLedgerSet}.
     */
    function setTaskLedger(address ledger) external;

    /**
     * @notice Holds `msg.value` in escrow as the fee of task `taskId`, paid by `payerOrg`.
     * @dev Requirements: caller is the task ledger; nothing was escrowed for `taskId` yet.
     * Emits {FeeEscrowed}.
     */
    function escrow(uint256 taskId, uint256 payerOrg) external payable;

    /**
     * @notice Counts one use of each dataset in `datasetIds` by task `taskId`.
     * @dev Requirements: caller is the task ledger. Emits one {UsageRecorded} per dataset.
     */
    function recordUsage(uint256 taskId, bytes32[] calldata datasetIds) external;

    /**
     * @notice Settles task `taskId`: credits payee `i` with `fee * bps[i] / 10000`, the rounding remainder
     * going to the last payee so that the whole fee is allocated.
     * @dev Requirements: caller is the task ledger; the fee is in escrow (not settled, not refunded);
     * `payeeOrgs` and `bps` are non-empty, of equal length, `bps` sums to exactly 10000; every payee
     * organisation exists. Emits one {FeeAllocated} per payee, then {TaskSettled}.
     */
    function allocate(uint256 taskId, uint256[] calldata payeeOrgs, uint16[] calldata bps, bytes32 provenanceHash)
        external;

    /**
     * @notice Credits the escrowed fee of task `taskId` back to its payer organisation.
     * @dev Requirements: caller is the task ledger; the fee is in escrow (not settled, not refunded).
     * Emits {FeeRefunded}.
     */
    function refund(uint256 taskId) external;

    /**
     * @notice Sends `amount` wei of the balance of organisation `orgId` to `to`.
     * @dev Requirements: caller has ROLE_ORG_ADMIN in the Active organisation `orgId`; `to` is non-zero;
     * `amount` does not exceed the balance; `to` accepts the transfer. Emits {Withdrawn}.
     */
    function withdraw(uint256 orgId, address payable to, uint256 amount) external;

    /// @notice Returns the withdrawable balance of an organisation, in wei.
    function balanceOf(uint256 orgId) external view returns (uint256);

    /// @notice Returns the fee held in escrow for a task: 0 once settled or refunded.
    function escrowOf(uint256 taskId) external view returns (uint256);

    /// @notice Returns the number of authorised tasks that used a dataset.
    function usageOf(bytes32 datasetId) external view returns (uint256);

    /// @notice Returns the provenance hash a task was settled with, and whether it was settled.
    function settlementOf(uint256 taskId) external view returns (bytes32 provenanceHash, bool settled);

    /// @notice Returns the task ledger, zero until wired.
    function taskLedger() external view returns (address);
}
