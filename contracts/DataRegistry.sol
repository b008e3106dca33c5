// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IDataRegistry} from "./interfaces/IDataRegistry.sol";
import {IOrgRegistry} from "./interfaces/IOrgRegistry.sol";
import {Roles} from "./Roles.sol";

/**
 * @title DataRegistry
 * @notice Data rights layer (F2) of privledger. See {IDataRegistry}.
 */
contract DataRegistry is IDataRegistry {
    uint8 public constant MAX_LEVEL = 4;
    uint256 public constant MAX_PARENTS = 16;
    uint16 private constant MAX_BPS = 10_000;

    /**
     * @dev Storage layout of a {Dataset}: the fields read or written by other contracts while a task is
     * submitted (owner, retired flag, usage counter) share the first slot, so counting a use costs no fresh slot.
     */
    struct Record {
        uint64 ownerOrg;
        uint64 rowCount;
        uint40 registeredAt;
        uint16 upstreamBps;
        uint8 level;
        bool retired;
        uint56 uses;
        uint128 unitPrice;
        bytes32 schemaHash;
        bytes32 commitment;
        bytes32[] parents;
    }

    IOrgRegistry private immutable _orgs;
    address private immutable _metering;
    uint256 private _datasetCount;
    mapping(bytes32 datasetId => Record) private _datasets;

    /// @param metering the Metering, the only caller of {recordUse} (deployed after this registry, at an
    /// address the deployer computes in advance).
    constructor(IOrgRegistry orgs, address metering) {
        _orgs = orgs;
        _metering = metering;
    }

    /// @inheritdoc IDataRegistry
    function register(
        bytes32 schemaHash,
        bytes32 commitment,
        uint64 rowCount,
        uint8 level,
        uint128 unitPrice,
        bytes32[] calldata parents,
        uint16 upstreamBps
    ) external returns (bytes32 datasetId) {
        uint256 ownerOrg = _orgs.orgWithRole(msg.sender, Roles.DATA_OWNER);
        if (ownerOrg == 0) revert DataRegistryUnauthorized(msg.sender);
        if (level == 0 || level > MAX_LEVEL) revert DataRegistryInvalidLevel(level);
        _checkLineage(parents, upstreamBps);
        datasetId = keccak256(abi.encode(ownerOrg, schemaHash, commitment));
        if (_exists(datasetId)) revert DataRegistryAlreadyExists(datasetId);

        Record storage record = _datasets[datasetId];
        record.ownerOrg = SafeCast.toUint64(ownerOrg);
        record.rowCount = rowCount;
        record.registeredAt = uint40(block.timestamp);
        record.upstreamBps = upstreamBps;
        record.level = level;
        record.unitPrice = unitPrice;
        record.schemaHash = schemaHash;
        record.commitment = commitment;
        record.parents = parents;
        ++_datasetCount;
        emit DatasetRegistered(datasetId, ownerOrg, level, rowCount);
    }

    /// @inheritdoc IDataRegistry
    function retire(bytes32 datasetId) external {
        Record storage record = _checkOwner(datasetId);
        record.retired = true;
        emit DatasetRetired(datasetId);
    }

    /// @inheritdoc IDataRegistry
    function setUnitPrice(bytes32 datasetId, uint128 unitPrice) external {
        Record storage record = _checkOwner(datasetId);
        record.unitPrice = unitPrice;
        emit UnitPriceChanged(datasetId, unitPrice);
    }

    /// @inheritdoc IDataRegistry
    function recordUse(bytes32 datasetId) external returns (uint256 uses) {
        if (msg.sender != _metering) revert DataRegistryUnauthorized(msg.sender);
        Record storage record = _record(datasetId);
        uses = record.uses + 1;
        record.uses = uint56(uses);
    }

    /// @inheritdoc IDataRegistry
    function getDataset(bytes32 datasetId) external view returns (Dataset memory) {
        Record storage record = _record(datasetId);
        return Dataset({
            ownerOrg: record.ownerOrg,
            schemaHash: record.schemaHash,
            commitment: record.commitment,
            rowCount: record.rowCount,
            level: record.level,
            unitPrice: record.unitPrice,
            upstreamBps: record.upstreamBps,
            retired: record.retired,
            registeredAt: record.registeredAt,
            parents: record.parents
        });
    }

    /// @inheritdoc IDataRegistry
    function exists(bytes32 datasetId) external view returns (bool) {
        return _exists(datasetId);
    }

    /// @inheritdoc IDataRegistry
    function ownerOf(bytes32 datasetId) external view returns (uint256) {
        return _record(datasetId).ownerOrg;
    }

    /// @inheritdoc IDataRegistry
    function isRetired(bytes32 datasetId) external view returns (bool) {
        return _record(datasetId).retired;
    }

    /// @inheritdoc IDataRegistry
    function ownerAndRetired(bytes32 datasetId) external view returns (uint256 ownerOrg, bool retired) {
        Record storage record = _record(datasetId);
        return (record.ownerOrg, record.retired);
    }

    /// @inheritdoc IDataRegistry
    function usageOf(bytes32 datasetId) external view returns (uint256) {
        return _datasets[datasetId].uses;
    }

    /// @inheritdoc IDataRegistry
    function parentsOf(bytes32 datasetId) external view returns (bytes32[] memory) {
        return _record(datasetId).parents;
    }

    /// @inheritdoc IDataRegistry
    function chargeOf(bytes32 datasetId)
        external
        view
        returns (uint64 rowCount, uint128 unitPrice, uint16 upstreamBps)
    {
        Record storage record = _record(datasetId);
        return (record.rowCount, record.unitPrice, record.upstreamBps);
    }

    /// @inheritdoc IDataRegistry
    function parentOwnersOf(bytes32 datasetId) external view returns (uint256[] memory owners) {
        bytes32[] storage parents = _record(datasetId).parents;
        owners = new uint256[](parents.length);
        for (uint256 i = 0; i < parents.length; ++i) {
            owners[i] = _datasets[parents[i]].ownerOrg;
        }
    }

    /// @inheritdoc IDataRegistry
    function datasetCount() external view returns (uint256) {
        return _datasetCount;
    }

    /// @dev Reverts unless `parents` are distinct registered datasets, at most MAX_PARENTS, and
    /// `upstreamBps` is at most 10000 and 0 when there are no parents.
    function _checkLineage(bytes32[] calldata parents, uint16 upstreamBps) private view {
        uint256 count = parents.length;
        if (upstreamBps > MAX_BPS || (count == 0 && upstreamBps != 0)) revert DataRegistryInvalidUpstream(upstreamBps);
        if (count > MAX_PARENTS) revert DataRegistryInvalidParents();
        for (uint256 i = 0; i < count; ++i) {
            if (!_exists(parents[i])) revert DataRegistryUnknownDataset(parents[i]);
            for (uint256 j = 0; j < i; ++j) {
                if (parents[j] == parents[i]) revert DataRegistryInvalidParents();
            }
        }
    }

    /// @dev Returns the record of a live dataset whose owning organisation the caller is a data owner of.
    function _checkOwner(bytes32 datasetId) private view returns (Record storage record) {
        record = _record(datasetId);
        if (!_orgs.hasOrgRole(record.ownerOrg, msg.sender, Roles.DATA_OWNER)) {
            revert DataRegistryUnauthorized(msg.sender);
        }
        if (record.retired) revert DataRegistryRetired(datasetId);
    }

    function _record(bytes32 datasetId) private view returns (Record storage record) {
        record = _datasets[datasetId];
        if (record.ownerOrg == 0) revert DataRegistryUnknownDataset(datasetId);
    }

    /// @dev Every registered dataset has a non-zero owner organisation.
    function _exists(bytes32 datasetId) private view returns (bool) {
        return _datasets[datasetId].ownerOrg != 0;
    }
}
