// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IDataRegistry
 * @notice Data rights layer (F2): content-addressed dataset records, their owner organisation, sensitivity
 * level, price and lineage.
 *
 * `datasetId = keccak256(abi.encode(ownerOrg, schemaHash, commitment))`. A derived dataset lists its
 * `parents`; `upstreamBps` is the share (basis points) of its revenue passed on to the parents' owners.
 */
interface IDataRegistry {
    struct Dataset {
        uint256 ownerOrg;
        bytes32 schemaHash;
        bytes32 commitment;
        uint64 rowCount;
        uint8 level; // sensitivity level, 1..4
        uint128 unitPrice; // wei per row
        uint16 upstreamBps; // share of this dataset's revenue passed upstream to its parents
        bool retired;
        uint64 registeredAt;
        bytes32[] parents;
    }

    error DataRegistryUnauthorized(address account);
    error DataRegistryUnknownDataset(bytes32 datasetId);
    error DataRegistryAlreadyExists(bytes32 datasetId);
    error DataRegistryInvalidLevel(uint8 level);
    error DataRegistryInvalidParents();
    error DataRegistryInvalidUpstream(uint16 upstreamBps);
    error DataRegistryRetired(bytes32 datasetId);

    /// @notice Emitted when a dataset is registered.
    event DatasetRegistered(bytes32 indexed datasetId, uint256 indexed ownerOrg, uint8 level, uint64 rowCount);

    /// @notice Emitted when a dataset is retired.
    event DatasetRetired(bytes32 indexed datasetId);

    /// @notice Emitted when a dataset's price per row changes.
    event UnitPriceChanged(bytes32 indexed datasetId, uint128 unitPrice);

    /**
     * @notice Registers a dataset owned by the caller's organisation.
     * @dev Requirements: caller has ROLE_DATA_OWNER in an Active organisation; `level` is 1..4; the dataset
     * is not registered yet; `parents` are registered datasets, without duplicates, at most MAX_PARENTS;
     * `upstreamBps` is at most 10000, and 0 when there are no parents.
     * Emits {DatasetRegistered}.
     */
    function register(
        bytes32 schemaHash,
        bytes32 commitment,
        uint64 rowCount,
        uint8 level,
        uint128 unitPrice,
        bytes32[] calldata parents,
        uint16 upstreamBps
    ) external returns (bytes32 datasetId);

    /**
     * @notice Retires a dataset: it can no longer be granted, approved or used as a task input.
     * @dev Requirements: the dataset exists and is not retired; caller has ROLE_DATA_OWNER in the owning
     * organisation. Emits {DatasetRetired}.
     */
    function retire(bytes32 datasetId) external;

    /**
     * @notice Sets the price, in wei per row, of a dataset.
     * @dev Requirements: the dataset exists and is not retired; caller has ROLE_DATA_OWNER in the owning
     * organisation. Emits {UnitPriceChanged}.
     */
    function setUnitPrice(bytes32 datasetId, uint128 unitPrice) external;

    /**
     * @notice Counts one more use of a dataset by an authorised task and returns its usage count so far. The
     * counter lives in the dataset's record; the Metering keeps the books ({IMetering-recordUsage}).
     * @dev Requirements: caller is the Metering; the dataset exists.
     */
    function recordUse(bytes32 datasetId) external returns (uint256 uses);

    /// @notice Returns a dataset. Reverts with {DataRegistryUnknownDataset} if it does not exist.
    function getDataset(bytes32 datasetId) external view returns (Dataset memory);

    /// @notice Returns true iff the dataset is registered.
    function exists(bytes32 datasetId) external view returns (bool);

    /// @notice Returns the owner organisation of a dataset. Reverts with {DataRegistryUnknownDataset}.
    function ownerOf(bytes32 datasetId) external view returns (uint256);

    /// @notice Returns true iff the dataset is retired. Reverts with {DataRegistryUnknownDataset}.
    function isRetired(bytes32 datasetId) external view returns (bool);

    /// @notice Returns the owner organisation of a dataset and whether it is retired, in one call.
    /// Reverts with {DataRegistryUnknownDataset}.
    function ownerAndRetired(bytes32 datasetId) external view returns (uint256 ownerOrg, bool retired);

    /// @notice Returns the number of authorised tasks that used a dataset as a foreign input; 0 if unknown.
    function usageOf(bytes32 datasetId) external view returns (uint256);

    /// @notice Returns the direct parents of a dataset. Reverts with {DataRegistryUnknownDataset}.
    function parentsOf(bytes32 datasetId) external view returns (bytes32[] memory);

    /**
     * @notice Returns what a task's settlement weighs a dataset by, which a task ledger fixes when a task using it
     * is submitted: its row count, its price per row now, and its upstream share. Reverts with
     * {DataRegistryUnknownDataset}.
     */
    function chargeOf(bytes32 datasetId)
        external
        view
        returns (uint64 rowCount, uint128 unitPrice, uint16 upstreamBps);

    /**
     * @notice Returns the owner organisations of a dataset's parents, in order (one entry per parent). Neither
     * the parents nor any dataset's owner ever change. Reverts with {DataRegistryUnknownDataset}.
     */
    function parentOwnersOf(bytes32 datasetId) external view returns (uint256[] memory owners);

    /// @notice Returns the number of registered datasets.
    function datasetCount() external view returns (uint256);
}
