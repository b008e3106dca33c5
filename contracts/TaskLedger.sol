// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IDataRegistry} from "./interfaces/IDataRegistry.sol";
import {IGrantRegistry} from "./interfaces/IGrantRegistry.sol";
import {IMetering} from "./interfaces/IMetering.sol";
import {IOrgRegistry} from "./interfaces/IOrgRegistry.sol";
import {ITaskLedger} from "./interfaces/ITaskLedger.sol";

/**
 * @title TaskLedger
 * @notice Task ledger (F4) of privledger. See {ITaskLedger}.
 * @dev Fees are held by the Metering contract; input authorisation is delegated to the GrantRegistry.
 */
contract TaskLedger is ITaskLedger {
    uint32 public constant REASON_REJECTED = 1;
    uint32 public constant REASON_EXPIRED = 2;
    uint256 public constant MAX_INPUTS = 16;
    uint256 public constant MAX_PARTICIPANTS = 16;
    uint256 public constant MAX_DURATION = 30 days;
    uint8 private constant ROLE_OPERATOR = 4; // IOrgRegistry.ROLE_OPERATOR
    uint8 private constant ALL_KINDS = 15; // IGrantRegistry.KIND_PSI | KIND_PIR | KIND_STATS | KIND_FL
    uint16 private constant TOTAL_BPS = 10_000;

    /**
     * @dev Storage layout of a {Task}. Slot 1 holds every field the lifecycle functions read or write, slot 2
     * the requester and fee; then one slot per input and one slot per two participants. A seat packs a
     * participant organisation (low 64 bits) with the time it anchored its result (high 64 bits, 0 until it
     * does). Counts fit in uint8 as there are at most 16 inputs and 16 participants.
     */
    struct Record {
        bytes32 specHash;
        TaskStatus status;
        uint8 kind;
        uint8 inputCount;
        uint8 participantCount;
        uint8 pendingApprovals;
        uint8 anchoredCount;
        uint32 failureReason;
        uint40 submittedAt;
        uint40 deadline;
        uint64 requesterOrg;
        address requester;
        uint96 fee;
        bytes32[MAX_INPUTS] inputs;
        uint128[MAX_PARTICIPANTS] seats;
    }

    struct Anchor {
        bytes32 resultDigest;
        bytes32 transcriptHash;
    }

    IOrgRegistry private immutable _orgs;
    IDataRegistry private immutable _data;
    IGrantRegistry private immutable _grants;
    IMetering private immutable _metering;
    uint256 private _taskCount;
    mapping(uint256 taskId => Record) private _tasks;
    mapping(uint256 taskId => mapping(uint256 orgId => Anchor)) private _anchors;

    constructor(IOrgRegistry orgs, IDataRegistry data, IGrantRegistry grants, IMetering metering) {
        _orgs = orgs;
        _data = data;
        _grants = grants;
        _metering = metering;
    }

    modifier onlyGrantRegistry() {
        if (msg.sender != address(_grants)) revert TaskLedgerOnlyGrantRegistry(msg.sender);
        _;
    }

    /// @inheritdoc ITaskLedger
    function submitTask(
        bytes32 specHash,
        uint8 kind,
        bytes32[] calldata inputs,
        bytes32[] calldata grantIds,
        uint256[] calldata participants,
        uint64 deadline
    ) external payable returns (uint256 taskId) {
        uint256 requesterOrg = _operatorOrg();
        if (kind == 0 || kind & ~ALL_KINDS != 0 || kind & (kind - 1) != 0) revert TaskLedgerInvalidKind(kind);
        if (deadline <= block.timestamp || deadline > block.timestamp + MAX_DURATION) {
            revert TaskLedgerInvalidDeadline(deadline);
        }
        if (inputs.length == 0 || inputs.length > MAX_INPUTS || grantIds.length != inputs.length) {
            revert TaskLedgerInvalidInputs();
        }

        taskId = ++_taskCount;
        Record storage task = _tasks[taskId];
        task.specHash = specHash;
        task.status = TaskStatus.Submitted;
        task.kind = kind;
        task.submittedAt = SafeCast.toUint40(block.timestamp);
        task.deadline = SafeCast.toUint40(deadline);
        task.requesterOrg = SafeCast.toUint64(requesterOrg);
        task.requester = msg.sender;
        task.fee = SafeCast.toUint96(msg.value);
        _storeParticipants(task, participants);
        uint256[] memory owners = _storeInputs(task, inputs, grantIds);
        emit TaskSubmitted(taskId, requesterOrg, specHash, kind, msg.value, deadline);

        _metering.escrow{value: msg.value}(taskId, requesterOrg);
        _authoriseInputs(taskId, task, inputs, grantIds, owners);
        if (task.pendingApprovals == 0) _authorise(taskId, task);
    }

    /// @inheritdoc ITaskLedger
    function onInputApproved(uint256 taskId) external onlyGrantRegistry {
        Record storage task = _task(taskId);
        if (task.status != TaskStatus.Submitted) revert TaskLedgerInvalidStatus(taskId, task.status);

        if (--task.pendingApprovals == 0) _authorise(taskId, task);
    }

    /// @inheritdoc ITaskLedger
    function onInputRejected(uint256 taskId) external onlyGrantRegistry {
        Record storage task = _task(taskId);
        if (task.status != TaskStatus.Submitted) revert TaskLedgerInvalidStatus(taskId, task.status);

        _markFailed(taskId, task, 0, REASON_REJECTED);
        _metering.refund(taskId);
    }

    /// @inheritdoc ITaskLedger
    function startTask(uint256 taskId) external {
        Record storage task = _task(taskId);
        (uint256 org,) = _callerSeat(task);
        TaskStatus status = task.status;
        if (status == TaskStatus.Running) return;
        if (status != TaskStatus.Authorised) revert TaskLedgerInvalidStatus(taskId, status);

        task.status = TaskStatus.Running;
        emit TaskStarted(taskId, org);
    }

    /// @inheritdoc ITaskLedger
    function anchorResult(uint256 taskId, bytes32 resultDigest, bytes32 transcriptHash) external {
        Record storage task = _task(taskId);
        (uint256 org, uint256 index) = _callerSeat(task);
        TaskStatus status = task.status;
        if (status != TaskStatus.Authorised && status != TaskStatus.Running) {
            revert TaskLedgerInvalidStatus(taskId, status);
        }
        if (block.timestamp >= task.deadline) revert TaskLedgerDeadlinePassed(taskId);
        if (resultDigest == 0) revert TaskLedgerEmptyDigest();
        if (_seatAnchoredAt(task.seats[index]) != 0) revert TaskLedgerAlreadyAnchored(taskId, org);

        _anchors[taskId][org] = Anchor({resultDigest: resultDigest, transcriptHash: transcriptHash});
        task.seats[index] = _seat(org, block.timestamp);
        uint8 anchored = ++task.anchoredCount;
        emit ResultAnchored(taskId, org, resultDigest, transcriptHash);

        if (anchored == task.participantCount) {
            task.status = TaskStatus.Completed;
            emit TaskCompleted(taskId);
        }
    }

    /// @inheritdoc ITaskLedger
    function failTask(uint256 taskId, uint32 reasonCode) external {
        Record storage task = _task(taskId);
        (uint256 org,) = _callerSeat(task);
        if (!_isOpen(task.status)) revert TaskLedgerInvalidStatus(taskId, task.status);
        if (reasonCode == 0) revert TaskLedgerInvalidReason(reasonCode);

        _markFailed(taskId, task, org, reasonCode);
        _metering.refund(taskId);
    }

    /// @inheritdoc ITaskLedger
    function settleTask(uint256 taskId, uint256[] calldata payeeOrgs, uint16[] calldata bps, bytes32 provenanceHash)
        external
    {
        Record storage task = _task(taskId);
        if (_operatorOrg() != task.requesterOrg) revert TaskLedgerUnauthorized(msg.sender);
        if (task.status != TaskStatus.Completed) revert TaskLedgerInvalidStatus(taskId, task.status);
        if (block.timestamp >= task.deadline) revert TaskLedgerDeadlinePassed(taskId);
        for (uint256 i = 0; i < payeeOrgs.length; ++i) {
            if (!_isRightsHolder(task, payeeOrgs[i])) revert TaskLedgerInvalidPayee(payeeOrgs[i]);
        }

        task.status = TaskStatus.Settled;
        emit TaskSettled(taskId);

        _metering.allocate(taskId, payeeOrgs, bps, provenanceHash);
    }

    /// @inheritdoc ITaskLedger
    function expireTask(uint256 taskId) external {
        Record storage task = _task(taskId);
        if (block.timestamp < task.deadline) revert TaskLedgerNotExpirable(taskId);
        TaskStatus status = task.status;
        if (_isOpen(status)) {
            _markFailed(taskId, task, 0, REASON_EXPIRED);
            emit TaskExpired(taskId);
            _metering.refund(taskId);
        } else if (status == TaskStatus.Completed) {
            task.status = TaskStatus.Settled;
            emit TaskExpired(taskId);
            emit TaskSettled(taskId);
            _settleByDefault(taskId, task);
        } else {
            revert TaskLedgerNotExpirable(taskId);
        }
    }

    /// @inheritdoc ITaskLedger
    function getTask(uint256 taskId) external view returns (Task memory) {
        Record storage task = _task(taskId);
        uint256[] memory participants = new uint256[](task.participantCount);
        for (uint256 i = 0; i < participants.length; ++i) {
            participants[i] = _seatOrg(task.seats[i]);
        }
        return Task({
            specHash: task.specHash,
            kind: task.kind,
            status: task.status,
            requesterOrg: task.requesterOrg,
            requester: task.requester,
            submittedAt: task.submittedAt,
            deadline: task.deadline,
            pendingApprovals: task.pendingApprovals,
            anchoredCount: task.anchoredCount,
            failureReason: task.failureReason,
            fee: task.fee,
            inputs: _inputsOf(task),
            participants: participants
        });
    }

    /// @inheritdoc ITaskLedger
    function taskCount() external view returns (uint256) {
        return _taskCount;
    }

    /// @inheritdoc ITaskLedger
    function anchorOf(uint256 taskId, uint256 orgId)
        external
        view
        returns (bytes32 resultDigest, bytes32 transcriptHash, uint64 anchoredAt)
    {
        Record storage task = _tasks[taskId];
        (bool found, uint256 index) = _seatIndex(task, orgId);
        if (!found) return (0, 0, 0);
        Anchor storage anchor = _anchors[taskId][orgId];
        return (anchor.resultDigest, anchor.transcriptHash, _seatAnchoredAt(task.seats[index]));
    }

    /// @inheritdoc ITaskLedger
    function isParticipant(uint256 taskId, uint256 orgId) external view returns (bool found) {
        (found,) = _seatIndex(_tasks[taskId], orgId);
    }

    /// @dev Stores the participants: distinct Active organisations, the requester organisation among them.
    function _storeParticipants(Record storage task, uint256[] calldata participants) private {
        uint256 count = participants.length;
        if (count == 0 || count > MAX_PARTICIPANTS) revert TaskLedgerInvalidParticipants();
        uint256 requesterOrg = task.requesterOrg; // Active: the caller is one of its operators
        bool hasRequester = false;
        for (uint256 i = 0; i < count; ++i) {
            uint256 org = participants[i];
            if (org == requesterOrg) {
                hasRequester = true;
            } else if (!_orgs.isActive(org)) {
                revert TaskLedgerInvalidParticipants();
            }
            for (uint256 j = 0; j < i; ++j) {
                if (participants[j] == org) revert TaskLedgerInvalidParticipants();
            }
            task.seats[i] = _seat(org, 0);
        }
        if (!hasRequester) revert TaskLedgerInvalidParticipants();
        task.participantCount = uint8(count);
    }

    /**
     * @dev Stores the inputs (distinct, live datasets whose owners participate), counts the approvals to
     * request and returns the owner of each input.
     */
    function _storeInputs(Record storage task, bytes32[] calldata inputs, bytes32[] calldata grantIds)
        private
        returns (uint256[] memory owners)
    {
        uint256 requesterOrg = task.requesterOrg;
        uint256 count = inputs.length;
        uint8 pending = 0;
        owners = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            bytes32 input = inputs[i];
            for (uint256 j = 0; j < i; ++j) {
                if (inputs[j] == input) revert TaskLedgerInvalidInputs();
            }
            uint256 owner = _data.ownerOf(input);
            if (_data.isRetired(input)) revert TaskLedgerInputRetired(input);
            (bool found,) = _seatIndex(task, owner);
            if (!found) revert TaskLedgerMissingOwnerParticipant(input);
            task.inputs[i] = input;
            owners[i] = owner;
            if (owner != requesterOrg && grantIds[i] == 0) ++pending;
        }
        task.inputCount = uint8(count);
        task.pendingApprovals = pending;
    }

    /// @dev Consumes the grant of, or requests approval for, every input the requester does not own.
    function _authoriseInputs(
        uint256 taskId,
        Record storage task,
        bytes32[] calldata inputs,
        bytes32[] calldata grantIds,
        uint256[] memory owners
    ) private {
        uint256 requesterOrg = task.requesterOrg;
        uint8 kind = task.kind;
        for (uint256 i = 0; i < inputs.length; ++i) {
            if (owners[i] == requesterOrg) continue;
            if (grantIds[i] != 0) {
                _grants.consume(grantIds[i], requesterOrg, inputs[i], kind);
            } else {
                _grants.openRequest(taskId, inputs[i], requesterOrg, kind);
            }
        }
    }

    function _authorise(uint256 taskId, Record storage task) private {
        task.status = TaskStatus.Authorised;
        emit TaskAuthorised(taskId);

        _metering.recordUsage(taskId, _inputsOf(task));
    }

    function _markFailed(uint256 taskId, Record storage task, uint256 org, uint32 reasonCode) private {
        task.status = TaskStatus.Failed;
        task.failureReason = reasonCode;
        emit TaskFailed(taskId, org, reasonCode);
    }

    /// @dev Splits the fee equally among the distinct owners of the inputs other than the requester
    /// organisation (remainder to the last); refunds it if there are none.
    function _settleByDefault(uint256 taskId, Record storage task) private {
        uint256[] memory payees = _defaultPayees(task);
        uint256 count = payees.length;
        if (count == 0) {
            _metering.refund(taskId);
            return;
        }
        uint16[] memory bps = new uint16[](count);
        uint16 share = uint16(TOTAL_BPS / count);
        for (uint256 i = 0; i < count - 1; ++i) {
            bps[i] = share;
        }
        bps[count - 1] = uint16(TOTAL_BPS - share * (count - 1));
        _metering.allocate(taskId, payees, bps, bytes32(0));
    }

    function _defaultPayees(Record storage task) private view returns (uint256[] memory payees) {
        uint256 requesterOrg = task.requesterOrg;
        uint256 inputCount = task.inputCount;
        uint256[] memory owners = new uint256[](inputCount);
        uint256 count = 0;
        for (uint256 i = 0; i < inputCount; ++i) {
            uint256 owner = _data.ownerOf(task.inputs[i]);
            if (owner == requesterOrg || _contains(owners, count, owner)) continue;
            owners[count++] = owner;
        }
        payees = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            payees[i] = owners[i];
        }
    }

    /// @dev Returns true iff `org` owns one of the task's inputs or a direct parent of one.
    function _isRightsHolder(Record storage task, uint256 org) private view returns (bool) {
        uint256 inputCount = task.inputCount;
        for (uint256 i = 0; i < inputCount; ++i) {
            if (_data.ownerOf(task.inputs[i]) == org) return true;
        }
        for (uint256 i = 0; i < inputCount; ++i) {
            bytes32[] memory parents = _data.parentsOf(task.inputs[i]);
            for (uint256 j = 0; j < parents.length; ++j) {
                if (_data.ownerOf(parents[j]) == org) return true;
            }
        }
        return false;
    }

    /// @dev Returns the caller's organisation, in which it must be an operator.
    function _operatorOrg() private view returns (uint256 org) {
        org = _orgs.orgWithRole(msg.sender, ROLE_OPERATOR);
        if (org == 0) revert TaskLedgerUnauthorized(msg.sender);
    }

    /// @dev Returns the caller's organisation and its seat in the task; the caller must be an operator of a
    /// participant organisation.
    function _callerSeat(Record storage task) private view returns (uint256 org, uint256 index) {
        org = _operatorOrg();
        bool found;
        (found, index) = _seatIndex(task, org);
        if (!found) revert TaskLedgerUnauthorized(msg.sender);
    }

    function _seatIndex(Record storage task, uint256 org) private view returns (bool found, uint256 index) {
        uint256 count = task.participantCount;
        for (index = 0; index < count; ++index) {
            if (_seatOrg(task.seats[index]) == org) return (true, index);
        }
        return (false, 0);
    }

    function _task(uint256 taskId) private view returns (Record storage task) {
        task = _tasks[taskId];
        if (task.status == TaskStatus.None) revert TaskLedgerUnknownTask(taskId);
    }

    function _inputsOf(Record storage task) private view returns (bytes32[] memory inputs) {
        inputs = new bytes32[](task.inputCount);
        for (uint256 i = 0; i < inputs.length; ++i) {
            inputs[i] = task.inputs[i];
        }
    }

    function _isOpen(TaskStatus status) private pure returns (bool) {
        return status == TaskStatus.Submitted || status == TaskStatus.Authorised || status == TaskStatus.Running;
    }

    function _seat(uint256 org, uint256 anchoredAt) private pure returns (uint128) {
        return (uint128(SafeCast.toUint64(anchoredAt)) << 64) | SafeCast.toUint64(org);
    }

    function _seatOrg(uint128 seat) private pure returns (uint256) {
        return uint64(seat);
    }

    function _seatAnchoredAt(uint128 seat) private pure returns (uint64) {
        return uint64(seat >> 64);
    }

    function _contains(uint256[] memory values, uint256 length, uint256 value) private pure returns (bool) {
        for (uint256 i = 0; i < length; ++i) {
            if (values[i] == value) return true;
        }
        return false;
    }
}
