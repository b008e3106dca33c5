// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IBatchAnchor} from "./interfaces/IBatchAnchor.sol";
import {IOrgRegistry} from "./interfaces/IOrgRegistry.sol";
import {Roles} from "./Roles.sol";

/**
 * @title BatchAnchor
 * @notice Batch anchoring (F5) of privledger. See {IBatchAnchor} for the Merkle tree convention.
 */
contract BatchAnchor is IBatchAnchor {

    /// @dev Storage layout of a {Batch}: three slots.
    struct Record {
        bytes32 root;
        bytes32 label;
        uint64 orgId;
        uint32 leafCount;
        uint64 anchoredAt;
        uint64 blockNumber;
    }

    IOrgRegistry private immutable _orgs;
    uint256 private _batchCount;
    mapping(uint256 batchId => Record) private _batches;

    constructor(IOrgRegistry orgs) {
        _orgs = orgs;
    }

    /// @inheritdoc IBatchAnchor
    function anchorBatch(bytes32 root, uint32 leafCount, bytes32 label) external returns (uint256 batchId) {
        uint256 orgId = _orgs.orgWithRole(msg.sender, Roles.OPERATOR);
        if (orgId == 0) revert BatchAnchorUnauthorized(msg.sender);
        if (root == 0) revert BatchAnchorEmptyRoot();
        if (leafCount == 0) revert BatchAnchorEmptyBatch();

        batchId = ++_batchCount;
        _batches[batchId] = Record({
            root: root,
            label: label,
            orgId: SafeCast.toUint64(orgId),
            leafCount: leafCount,
            anchoredAt: uint64(block.timestamp),
            blockNumber: uint64(block.number)
        });
        emit BatchAnchored(batchId, orgId, root, leafCount, label);
    }

    /// @inheritdoc IBatchAnchor
    function verify(uint256 batchId, bytes32 digest, bytes32[] calldata proof) external view returns (bool) {
        return MerkleProof.verifyCalldata(proof, _record(batchId).root, leafHash(digest));
    }

    /// @inheritdoc IBatchAnchor
    function leafHash(bytes32 digest) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(digest))));
    }

    /// @inheritdoc IBatchAnchor
    function getBatch(uint256 batchId) external view returns (Batch memory) {
        Record storage record = _record(batchId);
        return Batch({
            root: record.root,
            leafCount: record.leafCount,
            orgId: record.orgId,
            label: record.label,
            anchoredAt: record.anchoredAt,
            blockNumber: record.blockNumber
        });
    }

    /// @inheritdoc IBatchAnchor
    function batchCount() external view returns (uint256) {
        return _batchCount;
    }

    function _record(uint256 batchId) private view returns (Record storage record) {
        record = _batches[batchId];
        if (record.root == 0) revert BatchAnchorUnknownBatch(batchId);
    }
}
