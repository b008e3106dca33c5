// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IMetering} from "./interfaces/IMetering.sol";
import {IOrgRegistry} from "./interfaces/IOrgRegistry.sol";

/**
 * @title Metering
 * @notice Metering and settlement layer (F6) of privledger. See {IMetering}.
 * @dev Fees are never pushed: allocations and refunds credit organisation balances, which org admins
 * withdraw. The contract's ether always equals the sum of balances plus the fees in escrow.
 */
contract Metering is IMetering, ReentrancyGuard {
    uint16 private constant TOTAL_BPS = 10_000;
    uint8 private constant ROLE_ORG_ADMIN = 1; // IOrgRegistry.ROLE_ORG_ADMIN
    bytes32 private constant CONSORTIUM_ADMIN_ROLE = 0x00; // DEFAULT_ADMIN_ROLE of the OrgRegistry

    enum EscrowState {
        None,
        Escrowed,
        Settled,
        Refunded
    }

    /// @dev The fee of a task and who paid it; one storage slot. The fee is kept after settlement.
    struct Escrow {
        uint128 fee;
        uint64 payerOrg;
        EscrowState state;
    }

    IOrgRegistry private immutable _orgs;
    address private _ledger;
    mapping(uint256 taskId => Escrow) private _escrows;
    mapping(uint256 taskId => bytes32) private _provenance;
    mapping(uint256 orgId => uint256) private _balances;
    mapping(bytes32 datasetId => uint256) private _usage;

    /**
     * @param admin the consortium admin expected to wire this contract; it must hold DEFAULT_ADMIN_ROLE on
     * `orgs`, which guards against deploying against the wrong OrgRegistry.
     */
    constructor(IOrgRegistry orgs, address admin) {
        if (!IAccessControl(address(orgs)).hasRole(CONSORTIUM_ADMIN_ROLE, admin)) revert MeteringUnauthorized(admin);
        _orgs = orgs;
    }

    modifier onlyLedger() {
        if (msg.sender != _ledger) revert MeteringUnauthorized(msg.sender);
        _;
    }

    /// @inheritdoc IMetering
    function setTaskLedger(address ledger) external {
        if (!IAccessControl(address(_orgs)).hasRole(CONSORTIUM_ADMIN_ROLE, msg.sender)) {
            revert MeteringUnauthorized(msg.sender);
        }
        if (_ledger != address(0)) revert MeteringLedgerAlreadySet();
        if (ledger == address(0)) revert MeteringInvalidLedger(ledger);

        _ledger = ledger;
        emit TaskLedgerSet(ledger);
    }

    /// @inheritdoc IMetering
    function escrow(uint256 taskId, uint256 payerOrg) external payable onlyLedger {
        if (_escrows[taskId].state != EscrowState.None) revert MeteringAlreadyEscrowed(taskId);

        _escrows[taskId] = Escrow({
            fee: SafeCast.toUint128(msg.value),
            payerOrg: SafeCast.toUint64(payerOrg),
            state: EscrowState.Escrowed
        });
        emit FeeEscrowed(taskId, payerOrg, msg.value);
    }

    /// @inheritdoc IMetering
    function recordUsage(uint256 taskId, bytes32[] calldata datasetIds) external onlyLedger {
        for (uint256 i = 0; i < datasetIds.length; ++i) {
            uint256 count = ++_usage[datasetIds[i]];
            emit UsageRecorded(taskId, datasetIds[i], count);
        }
    }

    /// @inheritdoc IMetering
    function allocate(uint256 taskId, uint256[] calldata payeeOrgs, uint16[] calldata bps, bytes32 provenanceHash)
        external
        onlyLedger
    {
        Escrow storage entry = _takeEscrow(taskId, EscrowState.Settled);
        _checkWeights(payeeOrgs, bps);
        _provenance[taskId] = provenanceHash;

        uint256 fee = entry.fee;
        uint256 allocated = 0;
        uint256 last = payeeOrgs.length - 1;
        for (uint256 i = 0; i < last; ++i) {
            uint256 share = (fee * bps[i]) / TOTAL_BPS;
            allocated += share;
            _credit(taskId, payeeOrgs[i], share);
        }
        _credit(taskId, payeeOrgs[last], fee - allocated);
        emit TaskSettled(taskId, provenanceHash, fee);
    }

    /// @inheritdoc IMetering
    function refund(uint256 taskId) external onlyLedger {
        Escrow storage entry = _takeEscrow(taskId, EscrowState.Refunded);
        uint256 payerOrg = entry.payerOrg;
        uint256 fee = entry.fee;

        _balances[payerOrg] += fee;
        emit FeeRefunded(taskId, payerOrg, fee);
    }

    /// @inheritdoc IMetering
    function withdraw(uint256 orgId, address payable to, uint256 amount) external nonReentrant {
        if (!_orgs.hasOrgRole(orgId, msg.sender, ROLE_ORG_ADMIN)) revert MeteringUnauthorized(msg.sender);
        if (to == address(0)) revert MeteringInvalidRecipient(to);
        uint256 balance = _balances[orgId];
        if (amount > balance) revert MeteringInsufficientBalance(orgId, balance, amount);

        _balances[orgId] = balance - amount;
        emit Withdrawn(orgId, to, amount);

        (bool success,) = to.call{value: amount}("");
        if (!success) revert MeteringTransferFailed(to, amount);
    }

    /// @inheritdoc IMetering
    function balanceOf(uint256 orgId) external view returns (uint256) {
        return _balances[orgId];
    }

    /// @inheritdoc IMetering
    function escrowOf(uint256 taskId) external view returns (uint256) {
        Escrow storage entry = _escrows[taskId];
        return entry.state == EscrowState.Escrowed ? entry.fee : 0;
    }

    /// @inheritdoc IMetering
    function usageOf(bytes32 datasetId) external view returns (uint256) {
        return _usage[datasetId];
    }

    /// @inheritdoc IMetering
    function settlementOf(uint256 taskId) external view returns (bytes32 provenanceHash, bool settled) {
        return (_provenance[taskId], _escrows[taskId].state == EscrowState.Settled);
    }

    /// @inheritdoc IMetering
    function taskLedger() external view returns (address) {
        return _ledger;
    }

    /// @dev Moves the escrow of `taskId` out of the Escrowed state into `outcome` and returns it.
    function _takeEscrow(uint256 taskId, EscrowState outcome) private returns (Escrow storage entry) {
        entry = _escrows[taskId];
        EscrowState state = entry.state;
        if (state == EscrowState.Settled) revert MeteringAlreadySettled(taskId);
        if (state != EscrowState.Escrowed) revert MeteringNotEscrowed(taskId);
        entry.state = outcome;
    }

    /// @dev Reverts unless the weights are well-formed, sum to TOTAL_BPS and every payee organisation exists.
    function _checkWeights(uint256[] calldata payeeOrgs, uint16[] calldata bps) private view {
        uint256 count = payeeOrgs.length;
        if (count == 0 || bps.length != count) revert MeteringInvalidWeights();
        uint256 orgCount = _orgs.orgCount();
        uint256 total = 0;
        for (uint256 i = 0; i < count; ++i) {
            if (payeeOrgs[i] == 0 || payeeOrgs[i] > orgCount) revert MeteringUnknownOrg(payeeOrgs[i]);
            total += bps[i];
        }
        if (total != TOTAL_BPS) revert MeteringInvalidWeights();
    }

    function _credit(uint256 taskId, uint256 orgId, uint256 amount) private {
        _balances[orgId] += amount;
        emit FeeAllocated(taskId, orgId, amount);
    }
}
