"""Deploy and wire the ledger contracts; record them in ``chain/deployments/<chainId>.json``.

Deploying again to the same chain reuses the recorded deployment when its contracts are still there
(the genesis hash matches and code exists at every address) and speak the same ABIs; otherwise the
contracts are deployed afresh and the record is replaced.

The contracts refer to each other through immutables, some to contracts deployed after them
(the GrantRegistry and the Metering accept calls only from the TaskLedger, the DataRegistry counts
uses only for the Metering). Their addresses are computed in advance from the deployer's nonce
(``CREATE`` addresses), and each deployment is checked to land where it was planned.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import rlp
from eth_typing import ChecksumAddress
from web3 import Web3

from privledger.evm.artifacts import Artifact
from privledger.evm.client import ChainClient
from privledger.evm.hashing import keccak256

logger = logging.getLogger(__name__)

# Deployment order, one transaction each; constructors take the planned addresses of the others.
CONTRACTS = (
    "OrgRegistry",
    "DataRegistry",
    "GrantRegistry",
    "Metering",
    "TaskLedger",
    "BatchAnchor",
    "ProjectRegistry",
)


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    genesis_hash: str
    deploy_block: int
    deployer: str
    addresses: dict[str, str]
    abi_hashes: dict[str, str]

    def address(self, name: str) -> ChecksumAddress:
        return Web3.to_checksum_address(self.addresses[name])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        return cls(**data)


def create_address(deployer: str, nonce: int) -> ChecksumAddress:
    """The address of the contract ``deployer`` creates in its transaction of nonce ``nonce``."""
    encoded = rlp.encode([bytes.fromhex(deployer.removeprefix("0x")), nonce])
    return Web3.to_checksum_address(keccak256(encoded)[12:])


def deployment_path(deployments_dir: Path, chain_id: int) -> Path:
    return deployments_dir / f"{chain_id}.json"


def load_deployment(deployments_dir: Path, chain_id: int) -> Deployment | None:
    path = deployment_path(deployments_dir, chain_id)
    if not path.is_file():
        return None
    return Deployment.from_json(json.loads(path.read_text()))


def chain_problem(w3: Web3, deployment: Deployment) -> str | None:
    """Why the chain ``w3`` talks to does not hold ``deployment`` (None when it does)."""
    genesis = w3.eth.get_block(0)["hash"].to_0x_hex()
    if genesis != deployment.genesis_hash:
        return (
            f"its genesis block is {genesis}, the deployment's {deployment.genesis_hash} (a "
            "chain restarted without its state, or another chain)"
        )
    head = w3.eth.block_number
    if head < deployment.deploy_block:
        return f"it is at block {head}, before the deployment's block {deployment.deploy_block}"
    for name in CONTRACTS:
        if not w3.eth.get_code(deployment.address(name)):
            return f"it has no {name} contract at {deployment.address(name)}"
    return None


def _still_valid(w3: Web3, deployment: Deployment, artifacts: dict[str, Artifact]) -> bool:
    if chain_problem(w3, deployment) is not None:
        return False
    return all(deployment.abi_hashes.get(name) == artifacts[name].abi_hash for name in CONTRACTS)


def deploy_contracts(
    client: ChainClient, artifacts: dict[str, Artifact], deployments_dir: Path
) -> Deployment:
    """Deploy (or reuse) the ledger contracts; ``client`` is the consortium admin's account."""
    w3 = client.w3
    existing = load_deployment(deployments_dir, client.chain_id)
    if existing is not None and _still_valid(w3, existing, artifacts):
        logger.info("reusing deployment from block %d", existing.deploy_block)
        return existing

    admin = client.address
    first_nonce = client.next_nonce()
    planned = {name: create_address(admin, first_nonce + i) for i, name in enumerate(CONTRACTS)}
    first_block: int | None = None

    def deploy(name: str, *args: Any) -> None:
        nonlocal first_block
        artifact = artifacts[name]
        receipt = client.deploy(artifact.abi, artifact.bytecode, *args)
        address = receipt["contractAddress"]
        if address is None:
            raise RuntimeError(f"deploying {name} returned no contract address")
        if address != planned[name]:
            raise RuntimeError(
                f"{name} landed at {address}, not at the planned {planned[name]}: another "
                f"transaction of {admin} moved its nonce during the deployment; deploy again"
            )
        first_block = receipt["blockNumber"] if first_block is None else first_block
        logger.info("deployed %s at %s", name, address)

    orgs, data = planned["OrgRegistry"], planned["DataRegistry"]
    deploy("OrgRegistry", admin)
    deploy("DataRegistry", orgs, planned["Metering"])
    deploy("GrantRegistry", orgs, data, planned["TaskLedger"], admin)
    deploy("Metering", orgs, data, planned["TaskLedger"], admin)
    deploy("TaskLedger", orgs, data, planned["GrantRegistry"], planned["Metering"])
    deploy("BatchAnchor", orgs)
    deploy("ProjectRegistry", orgs, data)

    if first_block is None:
        raise RuntimeError("no contract was deployed")
    deployment = Deployment(
        chain_id=client.chain_id,
        genesis_hash=w3.eth.get_block(0)["hash"].to_0x_hex(),
        deploy_block=first_block,
        deployer=admin,
        addresses=dict(planned),
        abi_hashes={name: artifacts[name].abi_hash for name in CONTRACTS},
    )
    path = deployment_path(deployments_dir, client.chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(deployment.to_json(), indent=2, sort_keys=True) + "\n")
    return deployment
