"""Shared fixtures: one real anvil and one deployment per test session, isolated per test by
``evm_snapshot`` / ``evm_revert``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from privledger.config import Settings
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import AnvilHandle, start_anvil
from privledger.evm.artifacts import Artifact
from privledger.evm.client import ChainClient
from privledger.evm.compiler import compile_contracts
from privledger.evm.deploy import Deployment, deploy_contracts
from privledger.evm.errors import ErrorDecoder
from privledger.evm.ledger import Ledger


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def artifacts(settings: Settings) -> dict[str, Artifact]:
    return compile_contracts(settings)


@pytest.fixture(scope="session")
def anvil(settings: Settings) -> Iterator[AnvilHandle]:
    with start_anvil(settings.chain_dir, accounts=20) as handle:
        yield handle


@pytest.fixture(scope="session")
def w3(anvil: AnvilHandle) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 30}))


@pytest.fixture(scope="session")
def deployment(
    w3: Web3, artifacts: dict[str, Artifact], tmp_path_factory: pytest.TempPathFactory
) -> Deployment:
    admin = ChainClient(w3, dev_account(0), ErrorDecoder(a.abi for a in artifacts.values()))
    return deploy_contracts(admin, artifacts, tmp_path_factory.mktemp("deployments"))


@pytest.fixture
def chain_snapshot(w3: Web3, deployment: Deployment) -> Iterator[None]:
    """Every test that changes the chain runs inside a snapshot that is reverted afterwards."""
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield
    w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]


@pytest.fixture
def ledger(
    w3: Web3, artifacts: dict[str, Artifact], deployment: Deployment, chain_snapshot: None
) -> Ledger:
    """The consortium admin's view of a freshly snapshotted ledger."""
    return Ledger.connect_dev(w3, artifacts, deployment)


@pytest.fixture
def project_root(settings: Settings) -> Path:
    return settings.project_root
