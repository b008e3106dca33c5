// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IBatchAnchor
 * @notice Batch anchoring (F5): an organisation commits to many off-chain digests at once by anchoring the
 * root of a Merkle tree over them.
 *
 * Tree convention (OpenZeppelin StandardMerkleTree for a single `bytes32` column):
 * - leaf = keccak256(bytes.concat(keccak256(abi.encode(digest)))): hashing the leaf twice means a
 *   64-byte inner node can never be passed off as a leaf (second preimage protection);
 * - inner node = keccak256 of its two children sorted in ascending order (OpenZeppelin
 *   Hashes.commutativeKeccak256), so proofs carry no left/right flags;
 * - a single-leaf tree has the leaf as root and an empty proof.
 */
interface IBatchAnchor {
    struct Batch {
        bytes32 root;
        uint32 leafCount;
        uint256 orgId;
        bytes32 label;
        uint64 anchoredAt;
        uint64 blockNumber;
    }

    error BatchAnchorUnauthorized(address account);
    error BatchAnchorEmptyRoot();
    error BatchAnchorEmptyBatch();
    error BatchAnchorUnknownBatch(uint256 batchId);

    /// @notice Emitted when an organisation anchors a batch root.
    event BatchAnchored(
        uint256 indexed batchId, uint256 indexed orgId, bytes32 root, uint32 leafCount, bytes32 indexed label
    );

    /**
     * @notice Anchors the Merkle root of a batch of `leafCount` digests, tagged with a free-form `label`.
     * @dev Requirements: caller has ROLE_OPERATOR in an Active organisation; `root` is non-zero;
     * `leafCount` is non-zero. Emits {BatchAnchored}.
     */
    function anchorBatch(bytes32 root, uint32 leafCount, bytes32 label) external returns (uint256 batchId);

    /**
     * @notice Returns true iff `proof` shows that `digest` is a leaf of batch `batchId`.
     * @dev Reverts with {BatchAnchorUnknownBatch} if the batch does not exist.
     */
    function verify(uint256 batchId, bytes32 digest, bytes32[] calldata proof) external view returns (bool);

    /// @notice Returns the leaf hash of `digest`: keccak256(bytes.concat(keccak256(abi.encode(digest)))).
    function leafHash(bytes32 digest) external pure returns (bytes32);

    /// @notice Returns a batch. Reverts with {BatchAnchorUnknownBatch} if it does not exist.
    function getBatch(uint256 batchId) external view returns (Batch memory);

    /// @notice Returns the number of anchored batches (which is also the highest batchId).
    function batchCount() external view returns (uint256);
}
