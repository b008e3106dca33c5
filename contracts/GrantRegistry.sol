// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IDataRegistry} from "./interfaces/IDataRegistry.sol";
import {IGrantRegistry} from "./interfaces/IGrantRegistry.sol";
import {IOrgRegistry} from "./interfaces/IOrgRegistry.sol";
import {ITaskLedger} from "./interfaces/ITaskLedger.sol";
import {Roles} from "./Roles.sol";

/**
 * @title GrantRegistry
 * @notice Authorisation layer (F3) of privledger. See {IGrantRegistry}.
 */
contract GrantRegistry is IGrantRegistry {
    uint8 public constant KIND_PSI = 1;
    uint8 public constant KIND_PIR = 2;
    uint8 public constant KIND_STATS = 4;
    uint8 public constant KIND_FL = 8;
    uint8 private constant ALL_KINDS = 15;

    uint32 private constant PROTOCOL_ZERO = 1; // bit 0: no protocol has id 0
    uint32 public constant ANY_DEALER = type(uint32).max;
    uint8 public constant MAX_DERIVATIONS = 8;

    /**
     * @dev Storage layout of a {Grant}: everything {consume} checks is in the second slot, the fee floor it
     * returns in the third. The second slot holds the nonce the grant id was derived from, so that {consume}
     * checks the dataset and the grantee by recomputing the id instead of loading the dataset id from the first
     * slot. Every grant has non-zero `kinds`, which tells an issued grant from an unknown one. Org ids fit in
     * uint32 (the grantee and the dealer are organisations, whose ids are small counters), and so do nonces.
     * `depth` (the links up to the root grant, 0 for a grant derived under none) shares the second slot, so that
     * {consume} reads the parent from the last slot only for a derived grant.
     */
    struct Record {
        bytes32 datasetId;
        uint32 granteeOrg;
        uint40 expiry;
        uint32 maxUses;
        uint32 used;
        uint8 kinds;
        bool revoked;
        uint32 nonce;
        uint32 protocols;
        uint32 dealer;
        uint8 depth;
        address grantor;
        uint96 minFee;
        bytes32 termsHash;
        bytes32 parentGrant;
    }

    IOrgRegistry private immutable _orgs;
    IDataRegistry private immutable _data;
    address private immutable _ledger;
    uint64 private _nonce;
    mapping(bytes32 grantId => Record) private _grants;
    mapping(uint256 taskId => mapping(bytes32 datasetId => ApprovalStatus)) private _approvals;

    /**
     * @param ledger the task ledger, the only caller of {consume} and {openRequest} (deployed after this
     * registry, at an address the deployer computes in advance).
     * @param admin the consortium admin deploying this registry; it must hold DEFAULT_ADMIN_ROLE on `orgs`,
     * which guards against deploying against the wrong OrgRegistry.
     */
    constructor(IOrgRegistry orgs, IDataRegistry data, address ledger, address admin) {
        if (!IAccessControl(address(orgs)).hasRole(Roles.CONSORTIUM_ADMIN, admin)) {
            revert GrantRegistryUnauthorized(admin);
        }
        if (ledger == address(0)) revert GrantRegistryInvalidLedger(ledger);
        _orgs = orgs;
        _data = data;
        _ledger = ledger;
        emit TaskLedgerSet(ledger);
    }

    modifier onlyLedger() {
        if (msg.sender != _ledger) revert GrantRegistryUnauthorized(msg.sender);
        _;
    }

    /// @inheritdoc IGrantRegistry
    function grant(bytes32 datasetId, uint256 granteeOrg, Terms calldata terms, string calldata termsDocument)
        external
        returns (bytes32 grantId)
    {
        uint256 ownerOrg = _checkDataOwner(datasetId);
        if (_data.isRetired(datasetId)) revert GrantRegistryDatasetRetired(datasetId);
        if (granteeOrg == ownerOrg || !_orgs.isActive(granteeOrg)) revert GrantRegistryInvalidGrantee(granteeOrg);
        _checkTerms(terms);
        if (bytes(termsDocument).length == 0) revert GrantRegistryEmptyTerms();
        uint8 depth = terms.parentGrant == 0 ? 0 : _checkParent(datasetId, granteeOrg, ownerOrg, terms);

        uint32 nonce = SafeCast.toUint32(_nonce++);
        grantId = _grantId(datasetId, granteeOrg, nonce);
        bytes32 termsHash = keccak256(bytes(termsDocument));
        _grants[grantId] = Record({
            datasetId: datasetId,
            granteeOrg: SafeCast.toUint32(granteeOrg),
            expiry: uint40(terms.expiry),
            maxUses: terms.maxUses,
            used: 0,
            kinds: terms.kinds,
            revoked: false,
            nonce: nonce,
            protocols: terms.protocols,
            dealer: terms.dealer,
            depth: depth,
            grantor: msg.sender,
            minFee: terms.minFee,
            termsHash: termsHash,
            parentGrant: terms.parentGrant
        });
        _emitIssued(grantId, datasetId, granteeOrg, terms, termsHash, termsDocument);
    }

    /// @dev Emits {GrantIssued} (a function of its own for the stack's sake).
    function _emitIssued(
        bytes32 grantId,
        bytes32 datasetId,
        uint256 granteeOrg,
        Terms calldata terms,
        bytes32 termsHash,
        string calldata termsDocument
    ) private {
        emit GrantIssued(
            grantId,
            datasetId,
            granteeOrg,
            terms.kinds,
            terms.expiry,
            terms.maxUses,
            terms.protocols,
            terms.dealer,
            terms.minFee,
            termsHash,
            termsDocument
        );
    }

    /// @inheritdoc IGrantRegistry
    function revoke(bytes32 grantId) external {
        Record storage record = _record(grantId);
        _checkDataOwner(record.datasetId);
        if (record.revoked) revert GrantRegistryRevoked(grantId);

        record.revoked = true;
        emit GrantRevoked(grantId);
    }

    /// @inheritdoc IGrantRegistry
    function consume(
        uint256 taskId,
        bytes32 grantId,
        uint256 granteeOrg,
        bytes32 datasetId,
        uint8 kind,
        uint8 protocol,
        uint256 dealer
    ) external onlyLedger returns (uint256 minFee) {
        Record storage record = _record(grantId);
        if (_grantId(datasetId, granteeOrg, record.nonce) != grantId) revert GrantRegistryMismatch(grantId);
        if (record.revoked) revert GrantRegistryRevoked(grantId);
        if (block.timestamp >= record.expiry) revert GrantRegistryExpired(grantId);
        if (record.used >= record.maxUses) revert GrantRegistryExhausted(grantId);
        if (kind == 0 || record.kinds & kind != kind) revert GrantRegistryKindNotAllowed(grantId, kind);
        if (protocol == 0 || protocol > 31 || record.protocols & (uint32(1) << protocol) == 0) {
            revert GrantRegistryProtocolNotAllowed(grantId, protocol);
        }
        uint32 allowed = record.dealer;
        if (dealer != 0 && dealer != allowed && allowed != ANY_DEALER) {
            revert GrantRegistryDealerNotAllowed(grantId, dealer);
        }
        // the dataset's retirement: the ledger, the only caller, refuses a retired input before it consumes

        uint32 used = ++record.used;
        emit GrantConsumed(taskId, grantId, used);
        if (record.depth != 0) _countAgainstAncestors(taskId, grantId, record.parentGrant);
        return record.minFee;
    }

    /// @inheritdoc IGrantRegistry
    function openRequest(uint256 taskId, bytes32 datasetId, uint256 requesterOrg, uint8 kind) external onlyLedger {
        _approvals[taskId][datasetId] = ApprovalStatus.Pending;
        emit ApprovalRequested(taskId, datasetId, requesterOrg, kind);
    }

    /// @inheritdoc IGrantRegistry
    function approve(uint256 taskId, bytes32 datasetId) external {
        _checkPending(taskId, datasetId);
        if (_data.isRetired(datasetId)) revert GrantRegistryDatasetRetired(datasetId);

        _approvals[taskId][datasetId] = ApprovalStatus.Approved;
        emit InputApproved(taskId, datasetId, msg.sender);

        ITaskLedger(_ledger).onInputApproved(taskId);
    }

    /// @inheritdoc IGrantRegistry
    function reject(uint256 taskId, bytes32 datasetId) external {
        _checkPending(taskId, datasetId);

        _approvals[taskId][datasetId] = ApprovalStatus.Rejected;
        emit InputRejected(taskId, datasetId, msg.sender);

        ITaskLedger(_ledger).onInputRejected(taskId);
    }

    /// @inheritdoc IGrantRegistry
    function isUsable(bytes32 grantId, uint256 granteeOrg, bytes32 datasetId, uint8 kind)
        external
        view
        returns (bool)
    {
        Record storage record = _grants[grantId];
        return record.kinds != 0 && _grantId(datasetId, granteeOrg, record.nonce) == grantId && !record.revoked
            && block.timestamp < record.expiry && record.used < record.maxUses && kind != 0
            && record.kinds & kind == kind && !_data.isRetired(datasetId) && _lapsedAncestor(record.parentGrant) == 0;
    }

    /// @inheritdoc IGrantRegistry
    function getGrant(bytes32 grantId) external view returns (Grant memory) {
        Record storage record = _record(grantId);
        return Grant({
            datasetId: record.datasetId,
            granteeOrg: record.granteeOrg,
            kinds: record.kinds,
            expiry: record.expiry,
            maxUses: record.maxUses,
            used: record.used,
            revoked: record.revoked,
            grantor: record.grantor,
            protocols: record.protocols,
            dealer: record.dealer,
            minFee: record.minFee,
            termsHash: record.termsHash,
            parentGrant: record.parentGrant
        });
    }

    /// @inheritdoc IGrantRegistry
    function approvalOf(uint256 taskId, bytes32 datasetId) external view returns (ApprovalStatus) {
        return _approvals[taskId][datasetId];
    }

    /// @inheritdoc IGrantRegistry
    function taskLedger() external view returns (address) {
        return _ledger;
    }

    /// @dev Reverts unless the terms this registry enforces are well-formed.
    function _checkTerms(Terms calldata terms) private view {
        if (terms.kinds == 0 || terms.kinds & ~ALL_KINDS != 0) revert GrantRegistryInvalidKinds(terms.kinds);
        if (terms.protocols == 0 || terms.protocols & PROTOCOL_ZERO != 0) {
            revert GrantRegistryInvalidProtocols(terms.protocols);
        }
        if (terms.expiry <= block.timestamp || terms.expiry > type(uint40).max) {
            revert GrantRegistryInvalidExpiry(terms.expiry);
        }
        if (terms.maxUses == 0) revert GrantRegistryInvalidMaxUses();
    }

    /// @dev Reverts unless the request is Pending and the caller is a data owner of the dataset.
    function _checkPending(uint256 taskId, bytes32 datasetId) private view {
        _checkDataOwner(datasetId);
        if (_approvals[taskId][datasetId] != ApprovalStatus.Pending) revert GrantRegistryNotPending(taskId, datasetId);
    }

    /**
     * @dev Reverts unless `terms.parentGrant` may be the parent of a grant of `datasetId` (owned by `ownerOrg`)
     * to `granteeOrg` under `terms` (see {IGrantRegistry-grant}); returns the new grant's depth.
     */
    function _checkParent(bytes32 datasetId, uint256 granteeOrg, uint256 ownerOrg, Terms calldata terms)
        private
        view
        returns (uint8 depth)
    {
        bytes32 parentId = terms.parentGrant;
        Record storage parent = _grants[parentId];
        depth = parent.depth + 1;
        if (
            parent.kinds == 0 || parent.granteeOrg != granteeOrg || depth > MAX_DERIVATIONS
                || terms.kinds & ~parent.kinds != 0 || terms.protocols & ~parent.protocols != 0
                || _data.ownerOf(parent.datasetId) != ownerOrg || !_isParentDataset(parent.datasetId, datasetId)
                || _lapsedAncestor(parentId) != 0
        ) revert GrantRegistryInvalidParent(parentId);
        if (terms.expiry > parent.expiry) revert GrantRegistryInvalidExpiry(terms.expiry);
    }

    /// @dev Whether `parent` is one of the direct parents of `datasetId` in the DataRegistry.
    function _isParentDataset(bytes32 parent, bytes32 datasetId) private view returns (bool) {
        bytes32[] memory parents = _data.parentsOf(datasetId);
        for (uint256 i = 0; i < parents.length; ++i) {
            if (parents[i] == parent) return true;
        }
        return false;
    }

    /**
     * @dev Counts task `taskId`'s use of `grantId` against the uses of each of its ancestors, from its parent
     * `parentId` up; reverts if one is revoked, expired or used up. At most MAX_DERIVATIONS links, as {grant}
     * checked.
     */
    function _countAgainstAncestors(uint256 taskId, bytes32 grantId, bytes32 parentId) private {
        for (bytes32 id = parentId; id != 0;) {
            Record storage ancestor = _grants[id];
            if (_lapsed(ancestor)) revert GrantRegistryAncestorLapsed(grantId, id);
            uint32 used = ++ancestor.used;
            emit DerivedUseCounted(taskId, id, grantId, used);
            id = ancestor.parentGrant;
        }
    }

    /// @dev The first of `grantId` and its ancestors that is revoked, expired or used up; 0 if none is.
    function _lapsedAncestor(bytes32 grantId) private view returns (bytes32) {
        for (bytes32 id = grantId; id != 0; id = _grants[id].parentGrant) {
            if (_lapsed(_grants[id])) return id;
        }
        return 0;
    }

    function _lapsed(Record storage record) private view returns (bool) {
        return record.revoked || block.timestamp >= record.expiry || record.used >= record.maxUses;
    }

    /// @dev Reverts unless the caller has Roles.DATA_OWNER in the owning organisation of `datasetId`, returned.
    function _checkDataOwner(bytes32 datasetId) private view returns (uint256 ownerOrg) {
        ownerOrg = _data.ownerOf(datasetId);
        if (!_orgs.hasOrgRole(ownerOrg, msg.sender, Roles.DATA_OWNER)) revert GrantRegistryUnauthorized(msg.sender);
    }

    function _record(bytes32 grantId) private view returns (Record storage record) {
        record = _grants[grantId];
        if (record.kinds == 0) revert GrantRegistryUnknownGrant(grantId);
    }

    function _grantId(bytes32 datasetId, uint256 granteeOrg, uint256 nonce) private pure returns (bytes32) {
        return keccak256(abi.encode(datasetId, granteeOrg, nonce));
    }
}
