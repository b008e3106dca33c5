// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IDataRegistry} from "./interfaces/IDataRegistry.sol";
import {IGrantRegistry} from "./interfaces/IGrantRegistry.sol";
import {IMetering} from "./interfaces/IMetering.sol";
import {IOrgRegistry} from "./interfaces/IOrgRegistry.sol";
import {ITaskLedger} from "./interfaces/ITaskLedger.sol";
import {Roles} from "./Roles.sol";

/**
 * @title TaskLedger
 * @notice Task ledger (F4) of privledger. See {ITaskLedger}.
 * @dev The ledger holds the escrowed fees (in each task's record) and all the ether; the Metering keeps
 * usage counters and organisation balances and has the ledger pay withdrawals out ({disburse}). Input
 * authorisation is delegated to the GrantRegistry. Settlement is computed here, from the usage each provider
 * anchored and the charges of the inputs, fixed at submission from the DataRegistry; no caller names payees or
 * amounts.
 */
contract TaskLedger is ITaskLedger {
    uint32 public constant REASON_REJECTED = 1;
    uint32 public constant REASON_EXPIRED = 2;
    uint256 public constant MAX_INPUTS = 16;
    uint256 public constant MAX_PARTICIPANTS = 16;
    uint256 public constant MAX_DURATION = 30 days;
    uint8 public constant MAX_PROTOCOL = 31;
    uint64 public constant ABSENCE_GRACE = 60 seconds;
    uint8 private constant ALL_KINDS = 15; // IGrantRegistry.KIND_PSI | KIND_PIR | KIND_STATS | KIND_FL
    uint256 private constant TOTAL_BPS = 10_000;
    /// @dev Set in the task counter's slot from construction on, so that the first task does not pay for
    /// turning a zero slot non-zero; the count is the low 64 bits.
    uint256 private constant COUNTER_INITIALISED = 1 << 255;

    /**
     * @dev Storage layout of a {Task}, in as few slots as a two-party task allows. Slot 1 holds every field the
     * lifecycle functions read or write: the status, the counts, `anchored` (bit i set once participant i
     * anchored), `foreign` (bit i set iff input i is not owned by the requester organisation, i.e. was
     * authorised by a grant or an approval), `holders` (bit i set iff participant i owns one of the inputs),
     * the requester organisation's seat among the participants, the protocol and the first two participants
     * themselves. Slot 2 holds the requester and the fee, which is in escrow while the task is neither Failed
     * nor Settled. Participants from the third on take eight per slot, and inputs one slot each (a foreign input
     * one more, its {Charge}). Counts fit in uint8 and masks in uint16 as there are at most 16 inputs and 16
     * participants; organisation ids fit in uint32 (a participant must be an Active organisation, so a larger id
     * never reaches storage); times fit in uint32 until 2106.
     */
    struct Record {
        bytes32 specHash;
        TaskStatus status;
        uint8 kind;
        uint8 protocol;
        uint8 inputCount;
        uint8 participantCount;
        uint8 pendingApprovals;
        uint8 requesterSeat;
        uint16 anchored;
        uint16 foreign;
        uint16 holders;
        uint16 failureReason;
        uint32 submittedAt;
        uint32 deadline;
        uint32 participant0;
        uint32 participant1;
        address requester;
        uint96 fee;
        uint32[MAX_PARTICIPANTS - 2] moreParticipants;
        bytes32[MAX_INPUTS] inputs;
    }

    /**
     * @dev A foreign input's {InputCharge} in one slot: written at submission, so that its owner's anchor, which
     * adds the units, updates a slot instead of filling a new one (16,500 gas less for a two-party task). A price
     * fits in uint128 as in the DataRegistry; units above uint32 cannot be anchored, so neither can a larger row
     * count bind.
     */
    struct Charge {
        uint128 unitPrice;
        uint32 maxUnits;
        uint32 units;
        uint16 upstreamBps;
        uint8 seat; // the owner's seat among the participants
    }

    /// @dev The seats reported absent (bit i for participant i) and when.
    struct Absence {
        uint16 seats;
        uint64 reportedAt;
    }

    /// @dev The payees of a settlement and their weights, built input by input.
    struct Payouts {
        uint256[] payees;
        uint256[] weights;
        bool[] owners; // payee i is an input's owner (not a parent's)
        uint256 count;
        uint256 total;
    }

    IOrgRegistry private immutable _orgs;
    IDataRegistry private immutable _data;
    IGrantRegistry private immutable _grants;
    IMetering private immutable _metering;
    uint256 private _counter = COUNTER_INITIALISED;
    mapping(uint256 taskId => Record) private _tasks;
    /// @dev keccak256(abi.encode(resultDigest, transcriptHash)) per participant organisation.
    mapping(uint256 taskId => mapping(uint256 orgId => bytes32)) private _anchors;
    /// @dev The charge of each foreign input (by input index), with the usage units its owner anchored (matched
    /// rows, keys asked, aligned rows...).
    mapping(uint256 taskId => Charge[MAX_INPUTS]) private _charges;
    /// @dev The open absence report of a task ({reportAbsence}); written only when a party drops out.
    mapping(uint256 taskId => Absence) private _absences;
    /// @dev The seats of the providers that recorded a delivery (bit i for participant i).
    mapping(uint256 taskId => uint16) private _deliveries;

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
        uint8 protocol,
        bytes32[] calldata inputs,
        bytes32[] calldata grantIds,
        uint256[] calldata participants,
        uint64 deadline
    ) external payable returns (uint256 taskId) {
        uint256 requesterOrg = _operatorOrg();
        if (kind == 0 || kind & ~ALL_KINDS != 0 || kind & (kind - 1) != 0) revert TaskLedgerInvalidKind(kind);
        if (protocol == 0 || protocol > MAX_PROTOCOL) revert TaskLedgerInvalidProtocol(protocol);
        if (deadline <= block.timestamp || deadline > block.timestamp + MAX_DURATION) {
            revert TaskLedgerInvalidDeadline(deadline);
        }
        if (inputs.length == 0 || inputs.length > MAX_INPUTS || grantIds.length != inputs.length) {
            revert TaskLedgerInvalidInputs();
        }

        taskId = _nextTaskId();
        Record storage task = _tasks[taskId];
        _storeParticipants(task, participants, requesterOrg);
        _storeInputs(task, _charges[taskId], inputs, grantIds, participants);
        _storeHeader(taskId, task, specHash, kind, protocol, deadline, requesterOrg);

        _authoriseInputs(taskId, task, inputs, grantIds, requesterOrg);
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
        _refund(taskId, task);
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
    function anchorResult(uint256 taskId, bytes32 resultDigest, bytes32 transcriptHash, uint32 units) external {
        (Record storage task, uint256 org, uint256 index) = _openTaskSeat(taskId);
        if (resultDigest == 0) revert TaskLedgerEmptyDigest();
        uint16 anchored = task.anchored;
        if (anchored & (1 << index) != 0) revert TaskLedgerAlreadyAnchored(taskId, org);

        _anchors[taskId][org] = _commitment(resultDigest, transcriptHash);
        if (_providers(task) & (1 << index) != 0) _recordUnits(taskId, task.foreign, index, units);
        anchored |= uint16(1 << index);
        emit ResultAnchored(taskId, org, resultDigest, transcriptHash, units);

        if (anchored == (1 << task.participantCount) - 1) {
            task.anchored = anchored;
            task.status = TaskStatus.Completed;
            emit TaskCompleted(taskId);
        } else {
            task.anchored = anchored;
        }
    }

    /// @inheritdoc ITaskLedger
    function failTask(uint256 taskId, uint32 reasonCode) external {
        Record storage task = _task(taskId);
        (uint256 org,) = _callerSeat(task);
        if (!_isOpen(task.status)) revert TaskLedgerInvalidStatus(taskId, task.status);
        if (reasonCode == 0 || reasonCode > type(uint16).max) revert TaskLedgerInvalidReason(reasonCode);
        // the requester may hold a provider's output: nobody refunds it, whoever asks
        if (_deliveries[taskId] != 0 || task.anchored & _providers(task) != 0) revert TaskLedgerDelivered(taskId);

        _markFailed(taskId, task, org, reasonCode);
        _refund(taskId, task);
    }

    /// @inheritdoc ITaskLedger
    function recordDelivery(uint256 taskId) external {
        (Record storage task, uint256 org, uint256 index) = _openTaskSeat(taskId);
        uint16 seat = uint16(1 << index);
        if (_providers(task) & seat == 0) revert TaskLedgerNotProvider(taskId, org);
        uint16 delivered = _deliveries[taskId];
        if (delivered & seat != 0) return;

        _deliveries[taskId] = delivered | seat;
        emit DeliveryRecorded(taskId, org);
    }

    /// @inheritdoc ITaskLedger
    function deliveriesOf(uint256 taskId) external view returns (uint16 seats) {
        _task(taskId);
        return _deliveries[taskId];
    }

    /// @inheritdoc ITaskLedger
    function reportAbsence(uint256 taskId) external {
        (Record storage task, uint256 org, uint256 index) = _openTaskSeat(taskId);
        uint16 anchored = task.anchored;
        if (anchored & (1 << index) == 0) revert TaskLedgerNotAnchored(taskId, org);

        uint16 absent = uint16(((1 << task.participantCount) - 1) & ~uint256(anchored));
        Absence memory report = _absences[taskId];
        if (report.seats != absent) {
            _absences[taskId] = Absence(absent, uint64(block.timestamp));
            emit AbsenceReported(taskId, org, absent);
            return;
        }
        uint64 notBefore = report.reportedAt + ABSENCE_GRACE;
        if (block.timestamp < notBefore) revert TaskLedgerAbsenceGrace(taskId, notBefore);

        task.status = TaskStatus.Completed;
        uint256 count = task.participantCount;
        for (uint256 seat = 0; seat < count; ++seat) {
            if (absent & (1 << seat) != 0) emit ParticipantAbsent(taskId, _participant(task, seat));
        }
        emit TaskCompleted(taskId);
    }

    /// @inheritdoc ITaskLedger
    function absenceOf(uint256 taskId) external view returns (uint16 absentSeats, uint64 reportedAt) {
        _task(taskId);
        Absence memory report = _absences[taskId];
        return (report.seats, report.reportedAt);
    }

    /// @inheritdoc ITaskLedger
    function settleTask(uint256 taskId, bytes32 provenanceHash) external {
        Record storage task = _task(taskId);
        _callerSeat(task);
        if (task.status != TaskStatus.Completed) revert TaskLedgerInvalidStatus(taskId, task.status);

        task.status = TaskStatus.Settled;
        emit TaskSettled(taskId, provenanceHash, task.fee);
        _allocate(taskId, task);
    }

    /// @inheritdoc ITaskLedger
    function expireTask(uint256 taskId) external {
        Record storage task = _task(taskId);
        if (block.timestamp < task.deadline) revert TaskLedgerNotExpirable(taskId);
        TaskStatus status = task.status;
        uint256 providers = _providers(task);
        bool delivered = providers != 0 && (task.anchored & providers != 0 || _deliveries[taskId] != 0);
        if (status == TaskStatus.Completed || (_isOpen(status) && delivered)) {
            task.status = TaskStatus.Settled;
            emit TaskExpired(taskId);
            emit TaskSettled(taskId, 0, task.fee);
            _allocate(taskId, task);
        } else if (_isOpen(status)) {
            _markFailed(taskId, task, 0, REASON_EXPIRED);
            emit TaskExpired(taskId);
            _refund(taskId, task);
        } else {
            revert TaskLedgerNotExpirable(taskId);
        }
    }

    /// @inheritdoc ITaskLedger
    function disburse(address payable to, uint256 amount) external returns (bool success) {
        if (msg.sender != address(_metering)) revert TaskLedgerOnlyMetering(msg.sender);
        (success,) = to.call{value: amount}("");
    }

    /// @inheritdoc ITaskLedger
    function getTask(uint256 taskId) external view returns (Task memory) {
        Record storage task = _task(taskId);
        uint256[] memory participants = new uint256[](task.participantCount);
        for (uint256 i = 0; i < participants.length; ++i) {
            participants[i] = _participant(task, i);
        }
        return Task({
            specHash: task.specHash,
            kind: task.kind,
            protocol: task.protocol,
            status: task.status,
            requesterOrg: _requesterOrg(task),
            requester: task.requester,
            submittedAt: task.submittedAt,
            deadline: task.deadline,
            pendingApprovals: task.pendingApprovals,
            anchoredCount: uint16(_bitCount(task.anchored)),
            failureReason: task.failureReason,
            fee: task.fee,
            inputs: _inputsOf(task, type(uint16).max),
            participants: participants
        });
    }

    /// @inheritdoc ITaskLedger
    function taskCount() external view returns (uint256) {
        return uint64(_counter);
    }

    /// @inheritdoc ITaskLedger
    function anchorOf(uint256 taskId, uint256 orgId) external view returns (bytes32 commitment) {
        return _anchors[taskId][orgId];
    }

    /// @inheritdoc ITaskLedger
    function verifyAnchor(uint256 taskId, uint256 orgId, bytes32 resultDigest, bytes32 transcriptHash)
        external
        view
        returns (bool)
    {
        bytes32 commitment = _anchors[taskId][orgId];
        return commitment != 0 && commitment == _commitment(resultDigest, transcriptHash);
    }

    /// @inheritdoc ITaskLedger
    function unitsOf(uint256 taskId, uint256 orgId) external view returns (uint256) {
        Record storage task = _tasks[taskId];
        (bool found, uint256 seat) = _seatIndex(task, orgId);
        if (!found) return 0;
        uint256 foreign = task.foreign;
        Charge[MAX_INPUTS] storage charges = _charges[taskId];
        for (uint256 i = 0; foreign >> i != 0; ++i) {
            if (foreign & (1 << i) != 0 && charges[i].seat == seat) return charges[i].units;
        }
        return 0; // the requester organisation, or a participant owning no input
    }

    /// @inheritdoc ITaskLedger
    function chargesOf(uint256 taskId) external view returns (InputCharge[] memory charges) {
        Record storage task = _task(taskId);
        uint256 foreign = task.foreign;
        charges = new InputCharge[](_bitCount(foreign));
        uint256 count = 0;
        for (uint256 i = 0; foreign >> i != 0; ++i) {
            if (foreign & (1 << i) == 0) continue;
            Charge memory charge = _charges[taskId][i];
            charges[count++] = InputCharge({
                datasetId: task.inputs[i],
                ownerOrg: _participant(task, charge.seat),
                unitPrice: charge.unitPrice,
                maxUnits: charge.maxUnits,
                upstreamBps: charge.upstreamBps,
                units: charge.units
            });
        }
    }

    /// @inheritdoc ITaskLedger
    function escrowOf(uint256 taskId) external view returns (uint256) {
        Record storage task = _tasks[taskId];
        TaskStatus status = task.status;
        return _isOpen(status) || status == TaskStatus.Completed ? task.fee : 0;
    }

    /// @inheritdoc ITaskLedger
    function settlementOf(uint256 taskId) external view returns (bool settled) {
        return _tasks[taskId].status == TaskStatus.Settled;
    }

    /// @inheritdoc ITaskLedger
    function isParticipant(uint256 taskId, uint256 orgId) external view returns (bool found) {
        (found,) = _seatIndex(_tasks[taskId], orgId);
    }

    /// @dev Stores the participants: distinct Active organisations, the requester organisation among them.
    function _storeParticipants(Record storage task, uint256[] calldata participants, uint256 requesterOrg)
        private
    {
        uint256 count = participants.length;
        if (count == 0 || count > MAX_PARTICIPANTS) revert TaskLedgerInvalidParticipants();
        bool hasRequester = false;
        for (uint256 i = 0; i < count; ++i) {
            uint256 org = participants[i];
            if (org == requesterOrg) {
                hasRequester = true; // Active: the caller is one of its operators
                task.requesterSeat = uint8(i);
            } else if (!_orgs.isActive(org)) {
                revert TaskLedgerInvalidParticipants();
            }
            for (uint256 j = 0; j < i; ++j) {
                if (participants[j] == org) revert TaskLedgerInvalidParticipants();
            }
            uint32 stored = SafeCast.toUint32(org);
            if (i == 0) {
                task.participant0 = stored;
            } else if (i == 1) {
                task.participant1 = stored;
            } else {
                task.moreParticipants[i - 2] = stored;
            }
        }
        if (!hasRequester) revert TaskLedgerInvalidParticipants();
        task.participantCount = uint8(count);
    }

    /**
     * @dev Stores the inputs (distinct, live datasets whose owners participate), the mask of the foreign ones and
     * their charges, the mask of the participants owning an input and the number of approvals to request.
     */
    function _storeInputs(
        Record storage task,
        Charge[MAX_INPUTS] storage charges,
        bytes32[] calldata inputs,
        bytes32[] calldata grantIds,
        uint256[] calldata participants
    ) private {
        uint256 requesterSeat = task.requesterSeat;
        uint256 foreign = 0;
        uint256 holders = 0;
        uint256 pending = 0;
        for (uint256 i = 0; i < inputs.length; ++i) {
            bytes32 input = inputs[i];
            for (uint256 j = 0; j < i; ++j) {
                if (inputs[j] == input) revert TaskLedgerInvalidInputs();
            }
            uint256 seat = _ownerSeat(input, participants, requesterSeat);
            holders |= 1 << seat;
            if (seat != requesterSeat) {
                foreign |= 1 << i;
                if (grantIds[i] == 0) ++pending;
                _storeCharge(charges[i], input, seat);
            }
            task.inputs[i] = input;
        }
        task.inputCount = uint8(inputs.length);
        task.foreign = uint16(foreign);
        task.holders = uint16(holders);
        task.pendingApprovals = uint8(pending);
    }

    /// @dev Returns the seat of the owner of `input` among the participants; the input must not be retired.
    function _ownerSeat(bytes32 input, uint256[] calldata participants, uint256 requesterSeat)
        private
        view
        returns (uint256)
    {
        (uint256 owner, bool retired) = _data.ownerAndRetired(input);
        if (retired) revert TaskLedgerInputRetired(input);
        if (owner == participants[requesterSeat]) return requesterSeat;
        for (uint256 i = 0; i < participants.length; ++i) {
            if (participants[i] == owner) return i;
        }
        revert TaskLedgerMissingOwnerParticipant(input);
    }

    /// @dev Stores the charge of a foreign input owned by the participant in `seat`, as the DataRegistry has it now.
    function _storeCharge(Charge storage charge, bytes32 input, uint256 seat) private {
        (uint64 rowCount, uint128 unitPrice, uint16 upstreamBps) = _data.chargeOf(input);
        uint32 maxUnits = rowCount > type(uint32).max ? type(uint32).max : uint32(rowCount);
        charge.unitPrice = unitPrice;
        charge.maxUnits = maxUnits;
        charge.upstreamBps = upstreamBps;
        charge.seat = uint8(seat);
    }

    /// @dev Records the units the provider in `seat` anchored in the charge of each foreign input it owns.
    function _recordUnits(uint256 taskId, uint256 foreign, uint256 seat, uint32 units) private {
        Charge[MAX_INPUTS] storage charges = _charges[taskId];
        for (uint256 i = 0; foreign >> i != 0; ++i) {
            if (foreign & (1 << i) != 0 && charges[i].seat == seat) charges[i].units = units;
        }
    }

    /// @dev Stores the rest of a new task's header, the requester and the fee (escrowed from here on).
    function _storeHeader(
        uint256 taskId,
        Record storage task,
        bytes32 specHash,
        uint8 kind,
        uint8 protocol,
        uint64 deadline,
        uint256 requesterOrg
    ) private {
        task.specHash = specHash;
        task.status = TaskStatus.Submitted;
        task.kind = kind;
        task.protocol = protocol;
        task.submittedAt = uint32(block.timestamp);
        task.deadline = uint32(deadline);
        task.requester = msg.sender;
        task.fee = SafeCast.toUint96(msg.value);
        emit TaskSubmitted(taskId, requesterOrg, specHash, kind, msg.value, deadline);
    }

    /**
     * @dev Consumes the grant of, or requests approval for, every foreign input; the grants check the protocol and
     * the dealer (the one participant that holds no input and is not the requester, if any), and the fee must
     * reach the sum of their fee floors.
     */
    function _authoriseInputs(
        uint256 taskId,
        Record storage task,
        bytes32[] calldata inputs,
        bytes32[] calldata grantIds,
        uint256 requesterOrg
    ) private {
        uint256 foreign = task.foreign;
        uint8 kind = task.kind;
        uint8 protocol = task.protocol;
        uint256 dealer = _dealer(task);
        uint256 floor = 0;
        for (uint256 i = 0; i < inputs.length; ++i) {
            if (foreign & (1 << i) == 0) continue;
            if (grantIds[i] != 0) {
                floor += _grants.consume(taskId, grantIds[i], requesterOrg, inputs[i], kind, protocol, dealer);
            } else {
                _grants.openRequest(taskId, inputs[i], requesterOrg, kind);
            }
        }
        if (msg.value < floor) revert TaskLedgerFeeBelowFloor(msg.value, floor);
    }

    /// @dev Returns the participant holding no input other than the requester organisation (0 if none); there is
    /// at most one, and it must publish a dealer service.
    function _dealer(Record storage task) private view returns (uint256 dealer) {
        uint256 count = task.participantCount;
        uint256 others = ((1 << count) - 1) & ~uint256(task.holders) & ~(uint256(1) << task.requesterSeat);
        if (others == 0) return 0;
        if (others & (others - 1) != 0) revert TaskLedgerInvalidParticipants();
        for (uint256 i = 0; i < count; ++i) {
            if (others == 1 << i) dealer = _participant(task, i);
        }
        if (!_orgs.isDealer(dealer)) revert TaskLedgerDealerNotPublished(dealer);
    }

    /// @dev Authorises the task and meters the use of its foreign inputs.
    function _authorise(uint256 taskId, Record storage task) private {
        task.status = TaskStatus.Authorised;
        emit TaskAuthorised(taskId);

        uint16 foreign = task.foreign;
        if (foreign != 0) _metering.recordUsage(taskId, _inputsOf(task, foreign));
    }

    function _markFailed(uint256 taskId, Record storage task, uint256 org, uint32 reasonCode) private {
        task.status = TaskStatus.Failed;
        task.failureReason = uint16(reasonCode);
        emit TaskFailed(taskId, org, reasonCode);
    }

    /// @dev Credits the escrowed fee back to the requester organisation; the task is already Failed or Settled.
    function _refund(uint256 taskId, Record storage task) private {
        _metering.refund(taskId, _requesterOrg(task), task.fee);
    }

    /// @dev Returns the mask of the provider seats: participants other than the requester organisation owning an
    /// input.
    function _providers(Record storage task) private view returns (uint256) {
        return task.holders & ~(uint256(1) << task.requesterSeat);
    }

    /**
     * @dev Allocates the escrowed fee by provenance: each foreign input earns its owner the units the owner
     * anchored, at most its `maxUnits`, times its unit price, less its `upstreamBps` share, which goes in equal parts
     * to the owners of its parents -- all as fixed at submission ({Charge}). An owner that did not anchor (absent,
     * see {reportAbsence}) earns nothing, nor do its input's parents. With nothing earned the fee is split equally
     * among the owners of foreign inputs that anchored or recorded a delivery; with none of them it is refunded.
     * The requester organisation is never paid for its own inputs.
     */
    function _allocate(uint256 taskId, Record storage task) private {
        uint256 foreign = task.foreign;
        if (foreign == 0) {
            _refund(taskId, task);
            return;
        }
        uint256 inputCount = task.inputCount;
        Charge[] memory charges = new Charge[](inputCount);
        uint256[][] memory parentOwners = new uint256[][](inputCount);
        uint256 payeeCount = 0;
        for (uint256 i = 0; i < inputCount; ++i) {
            if (foreign & (1 << i) == 0) continue;
            charges[i] = _charges[taskId][i];
            // parents and owners never change (see {IDataRegistry-parentOwnersOf}): read them only when needed
            if (charges[i].upstreamBps != 0) parentOwners[i] = _data.parentOwnersOf(task.inputs[i]);
            payeeCount += 1 + parentOwners[i].length;
        }
        Payouts memory payouts = Payouts({
            payees: new uint256[](payeeCount),
            weights: new uint256[](payeeCount),
            owners: new bool[](payeeCount),
            count: 0,
            total: 0
        });
        for (uint256 i = 0; i < inputCount; ++i) {
            if (foreign & (1 << i) != 0) _addPayouts(taskId, task, charges[i], parentOwners[i], payouts);
        }
        uint256 found = payouts.count;
        if (found == 0) {
            _refund(taskId, task); // every provider was absent
            return;
        }
        if (payouts.total == 0) {
            for (uint256 i = 0; i < found; ++i) {
                if (payouts.owners[i]) payouts.weights[i] = 1;
            }
        }
        uint256[] memory payees = payouts.payees;
        uint256[] memory weights = payouts.weights;
        assembly ("memory-safe") {
            mstore(payees, found)
            mstore(weights, found)
        }
        _metering.allocate(taskId, payees, weights, task.fee);
    }

    /// @dev Adds what one foreign input earns its owner (its anchored units, at most its `maxUnits`, times its unit
    /// price, less the upstream share) and its parents' owners (the upstream share, in equal parts).
    function _addPayouts(
        uint256 taskId,
        Record storage task,
        Charge memory charge,
        uint256[] memory parentOwners,
        Payouts memory payouts
    ) private view {
        uint256 seat = charge.seat;
        // absent ({reportAbsence}) without a delivery recorded: gave nothing. One that recorded a delivery may have
        // given the requester its output: it stays a payee, with the units it anchored (none if it did not)
        if ((task.anchored | _deliveries[taskId]) & (1 << seat) == 0) return;
        uint256 units = charge.units < charge.maxUnits ? charge.units : charge.maxUnits;
        uint256 earned = units * charge.unitPrice * TOTAL_BPS;
        uint256 upstream = earned * charge.upstreamBps / TOTAL_BPS;
        _addPayee(payouts, _participant(task, seat), earned - upstream, true);
        uint256 parentCount = parentOwners.length;
        for (uint256 j = 0; j < parentCount; ++j) {
            _addPayee(payouts, parentOwners[j], upstream / parentCount, false);
        }
        payouts.total += earned;
    }

    /// @dev Adds `weight` to the payee `org`, a new entry unless it has one already (one payment per payee).
    function _addPayee(Payouts memory payouts, uint256 org, uint256 weight, bool owner) private pure {
        uint256 count = payouts.count;
        uint256 index = 0;
        while (index < count && payouts.payees[index] != org) {
            ++index;
        }
        if (index == count) {
            payouts.payees[index] = org;
            payouts.count = count + 1;
        }
        payouts.weights[index] += weight;
        if (owner) payouts.owners[index] = true;
    }

    /// @dev Returns a task that is Authorised or Running and before its deadline, with the caller's seat in it.
    function _openTaskSeat(uint256 taskId) private view returns (Record storage task, uint256 org, uint256 index) {
        task = _task(taskId);
        (org, index) = _callerSeat(task);
        TaskStatus status = task.status;
        if (status != TaskStatus.Authorised && status != TaskStatus.Running) {
            revert TaskLedgerInvalidStatus(taskId, status);
        }
        if (block.timestamp >= task.deadline) revert TaskLedgerDeadlinePassed(taskId);
    }

    /// @dev Returns the caller's organisation, in which it must be an operator.
    function _operatorOrg() private view returns (uint256 org) {
        org = _orgs.orgWithRole(msg.sender, Roles.OPERATOR);
        if (org == 0) revert TaskLedgerUnauthorized(msg.sender);
    }

    /// @dev Returns the caller's organisation and its seat in the task; the caller must be an operator of a
    /// participant organisation.
    function _callerSeat(Record storage task) private view returns (uint256 org, uint256 index) {
        org = _operatorOrg();
        uint256 requesterSeat = task.requesterSeat;
        if (org == _participant(task, requesterSeat)) return (org, requesterSeat);
        bool found;
        (found, index) = _seatIndex(task, org);
        if (!found) revert TaskLedgerUnauthorized(msg.sender);
    }

    function _seatIndex(Record storage task, uint256 org) private view returns (bool found, uint256 index) {
        uint256 count = task.participantCount;
        for (index = 0; index < count; ++index) {
            if (_participant(task, index) == org) return (true, index);
        }
        return (false, 0);
    }

    function _nextTaskId() private returns (uint256 taskId) {
        uint256 counter = _counter + 1;
        _counter = counter;
        taskId = uint64(counter);
    }

    function _task(uint256 taskId) private view returns (Record storage task) {
        task = _tasks[taskId];
        if (task.status == TaskStatus.None) revert TaskLedgerUnknownTask(taskId);
    }

    /// @dev Returns the inputs whose bit is set in `mask`, in order.
    function _inputsOf(Record storage task, uint256 mask) private view returns (bytes32[] memory inputs) {
        uint256 inputCount = task.inputCount;
        inputs = new bytes32[](inputCount);
        uint256 count = 0;
        for (uint256 i = 0; i < inputCount; ++i) {
            if (mask & (1 << i) != 0) inputs[count++] = task.inputs[i];
        }
        assembly ("memory-safe") {
            mstore(inputs, count)
        }
    }

    function _bitCount(uint256 bits) private pure returns (uint256 count) {
        for (; bits != 0; bits &= bits - 1) {
            ++count;
        }
    }

    function _isOpen(TaskStatus status) private pure returns (bool) {
        return status == TaskStatus.Submitted || status == TaskStatus.Authorised || status == TaskStatus.Running;
    }

    function _commitment(bytes32 resultDigest, bytes32 transcriptHash) private pure returns (bytes32) {
        return keccak256(abi.encode(resultDigest, transcriptHash));
    }

    function _requesterOrg(Record storage task) private view returns (uint256) {
        return _participant(task, task.requesterSeat);
    }

    function _participant(Record storage task, uint256 seat) private view returns (uint256) {
        if (seat == 0) return task.participant0;
        if (seat == 1) return task.participant1;
        return task.moreParticipants[seat - 2];
    }
}
