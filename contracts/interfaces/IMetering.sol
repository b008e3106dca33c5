// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IMetering
 * @notice Metering and settlement layer (F6): dataset usage counters, fee allocation to organisations and
 * withdrawal of their balances (pull payments).
 *
 * The task ledger holds the ether: a task's fee stays in the ledger, in the task's record, from submission
 * until the ledger settles or refunds it, which credits balances here; {withdraw} debits a balance and has
 * the ledger send the ether. Every state-changing function but {withdraw} is restricted to the task ledger.
 */
interface IMetering {
    error MeteringUnauthorized(address account);
    error MeteringInvalidLedger(address ledger);
    error MeteringInvalidWeights();
    error MeteringInvalidRecipient(address to);
    error MeteringInsufficientBalance(uint256 orgId, uint256 balance, uint256 amount);
    error MeteringTransferFailed(address to, uint256 amount);

    /// @notice Emitted once, on construction, with the task ledger this contract serves.
    event TaskLedgerSet(address ledger);

    /// @notice Emitted when an authorised task uses a foreign dataset; `count` is its usage count so far.
    event UsageRecorded(uint256 indexed taskId, bytes32 indexed datasetId, uint256 count);

    /// @notice Emitted for each payee when a task is settled.
    event FeeAllocated(uint256 indexed taskId, uint256 indexed payeeOrg, uint256 amount);

    /// @notice Emitted when a task's fee is credited back to its payer organisation.
    event FeeRefunded(uint256 indexed taskId, uint256 indexed payerOrg, uint256 amount);

    /// @notice Emitted when an organisation's balance is withdrawn.
    event Withdrawn(uint256 indexed orgId, address indexed to, uint256 amount);

    /**
     * @notice Counts one use of each dataset in `datasetIds` by task `taskId`. The ledger passes the task's
     * foreign inputs only (those a grant or an approval authorised); the requester's own are not metered.
     * The counters are stored in the datasets' records ({IDataRegistry-recordUse}).
     * @dev Requirements: caller is the task ledger. Emits one {UsageRecorded} per dataset.
     */
    function recordUsage(uint256 taskId, bytes32[] calldata datasetIds) external;

    /**
     * @notice Settles the fee `fee` of task `taskId`, which the ledger holds: credits payee `i` with
     * `fee * weights[i] / sum(weights)`, the rounding remainder going to the last payee of non-zero weight so that
     * the whole fee is allocated. The ledger computes the payees and weights from on-chain usage and prices.
     * @dev Requirements: caller is the task ledger (which settles a task at most once); `payeeOrgs` and `weights`
     * have equal length and some weight is non-zero; every payee organisation exists (the ledger ensures it:
     * it pays only owners of registered datasets). Emits one {FeeAllocated} per payee of non-zero weight.
     */
    function allocate(uint256 taskId, uint256[] calldata payeeOrgs, uint256[] calldata weights, uint256 fee)
        external;

    /**
     * @notice Credits the fee `fee` of task `taskId`, which the ledger holds, back to its payer organisation.
     * @dev Requirements: caller is the task ledger (which refunds a task at most once, never after settling
     * it). Emits {FeeRefunded}.
     */
    function refund(uint256 taskId, uint256 payerOrg, uint256 fee) external;

    /**
     * @notice Sends `amount` wei of the balance of organisation `orgId` to `to` (the ledger pays it out).
     * @dev Requirements: caller has ROLE_ORG_ADMIN in the Active organisation `orgId`; `to` is non-zero;
     * `amount` does not exceed the balance; `to` accepts the transfer. Emits {Withdrawn}.
     */
    function withdraw(uint256 orgId, address payable to, uint256 amount) external;

    /// @notice Returns the withdrawable balance of an organisation, in wei.
    function balanceOf(uint256 orgId) external view returns (uint256);

    /// @notice Returns the fee held in escrow for a task, as {ITaskLedger-escrowOf}: 0 once settled or refunded.
    function escrowOf(uint256 taskId) external view returns (uint256);

    /// @notice Returns the number of authorised tasks that used a dataset as a foreign input.
    function usageOf(bytes32 datasetId) external view returns (uint256);

    /// @notice Returns the task ledger, fixed on construction.
    function taskLedger() external view returns (address);
}
