// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IDataRegistry} from "./interfaces/IDataRegistry.sol";
import {IMetering} from "./interfaces/IMetering.sol";
import {IOrgRegistry} from "./interfaces/IOrgRegistry.sol";
import {ITaskLedger} from "./interfaces/ITaskLedger.sol";
import {Roles} from "./Roles.sol";

/**
 * @title Metering
 * @notice Metering and settlement layer (F6) of privledger. See {IMetering}.
 * @dev Fees are never pushed: allocations and refunds credit organisation balances, which org admins
 * withdraw. The ether stays in the task ledger, which always holds the sum of these balances plus the fees
 * of its unsettled tasks; a withdrawal debits the balance here first, then has the ledger pay it out.
 * Dataset usage counters are kept in the DataRegistry's records, where they share a slot with the fields the
 * ledger reads on submission; only this contract advances them.
 */
contract Metering is IMetering, ReentrancyGuard {

    IOrgRegistry private immutable _orgs;
    IDataRegistry private immutable _data;
    address private immutable _ledger;
    mapping(uint256 orgId => uint256) private _balances;

    /**
     * @param ledger the task ledger, the only caller of {recordUsage}, {allocate} and {refund} (deployed after
     * this contract, at an address the deployer computes in advance).
     * @param admin the consortium admin deploying this contract; it must hold DEFAULT_ADMIN_ROLE on `orgs`,
     * which guards against deploying against the wrong OrgRegistry.
     */
    constructor(IOrgRegistry orgs, IDataRegistry data, address ledger, address admin) {
        if (!IAccessControl(address(orgs)).hasRole(Roles.CONSORTIUM_ADMIN, admin)) revert MeteringUnauthorized(admin);
        if (ledger == address(0)) revert MeteringInvalidLedger(ledger);
        _orgs = orgs;
        _data = data;
        _ledger = ledger;
        emit TaskLedgerSet(ledger);
    }

    modifier onlyLedger() {
        if (msg.sender != _ledger) revert MeteringUnauthorized(msg.sender);
        _;
    }

    /// @inheritdoc IMetering
    function recordUsage(uint256 taskId, bytes32[] calldata datasetIds) external onlyLedger {
        for (uint256 i = 0; i < datasetIds.length; ++i) {
            bytes32 datasetId = datasetIds[i];
            emit UsageRecorded(taskId, datasetId, _data.recordUse(datasetId));
        }
    }

    /// @inheritdoc IMetering
    function allocate(uint256 taskId, uint256[] calldata payeeOrgs, uint256[] calldata weights, uint256 fee)
        external
        onlyLedger
    {
        uint256 count = payeeOrgs.length;
        if (weights.length != count) revert MeteringInvalidWeights();
        uint256 total = 0;
        uint256 last = 0;
        for (uint256 i = 0; i < count; ++i) {
            if (weights[i] == 0) continue;
            total += weights[i];
            last = i;
        }
        if (total == 0) revert MeteringInvalidWeights();

        uint256 allocated = 0;
        for (uint256 i = 0; i < last; ++i) {
            if (weights[i] == 0) continue;
            uint256 share = Math.mulDiv(fee, weights[i], total);
            allocated += share;
            _credit(taskId, payeeOrgs[i], share);
        }
        _credit(taskId, payeeOrgs[last], fee - allocated);
    }

    /// @inheritdoc IMetering
    function refund(uint256 taskId, uint256 payerOrg, uint256 fee) external onlyLedger {
        _balances[payerOrg] += fee;
        emit FeeRefunded(taskId, payerOrg, fee);
    }

    /// @inheritdoc IMetering
    function withdraw(uint256 orgId, address payable to, uint256 amount) external nonReentrant {
        if (!_orgs.hasOrgRole(orgId, msg.sender, Roles.ORG_ADMIN)) revert MeteringUnauthorized(msg.sender);
        if (to == address(0)) revert MeteringInvalidRecipient(to);
        uint256 balance = _balances[orgId];
        if (amount > balance) revert MeteringInsufficientBalance(orgId, balance, amount);

        _balances[orgId] = balance - amount;
        emit Withdrawn(orgId, to, amount);

        if (!ITaskLedger(_ledger).disburse(to, amount)) revert MeteringTransferFailed(to, amount);
    }

    /// @inheritdoc IMetering
    function balanceOf(uint256 orgId) external view returns (uint256) {
        return _balances[orgId];
    }

    /// @inheritdoc IMetering
    function escrowOf(uint256 taskId) external view returns (uint256) {
        return ITaskLedger(_ledger).escrowOf(taskId);
    }

    /// @inheritdoc IMetering
    function usageOf(bytes32 datasetId) external view returns (uint256) {
        return _data.usageOf(datasetId);
    }

    /// @inheritdoc IMetering
    function taskLedger() external view returns (address) {
        return _ledger;
    }

    function _credit(uint256 taskId, uint256 orgId, uint256 amount) private {
        _balances[orgId] += amount;
        emit FeeAllocated(taskId, orgId, amount);
    }
}
