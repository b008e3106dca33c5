"""Shared fixtures: one real anvil and one deployment per test session, isolated per test by
``evm_snapshot`` / ``evm_revert``; one throwaway PostgreSQL server per session, started when the
first ``postgres`` test needs it, with a database of its own for every test and node; one
throwaway two-node Ray cluster per session, started when the first ``ray`` test needs it."""

from __future__ import annotations

import itertools
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
from privledger.store.db import sqlite_url
from tests.pg_server import PostgresServer, PostgresUnavailable, start_postgres
from tests.ray_cluster import RayCluster, RayUnavailable, start_ray_cluster

# a fixture parametrised with STORES runs its tests on SQLite (the default; param None, so the
# same session-scoped instance serves the tests that do not ask for a store) and on PostgreSQL
STORES = [
    pytest.param(None, id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
_database_names = itertools.count(1)
# tests of a real engine that CI must run: a skip of one of them is a failure
NEVER_SKIP = ("postgres", "ray", "netns")


def parametrise_store(metafunc: pytest.Metafunc, fixture: str) -> None:
    """Run the test once per store, through the session-scoped ``fixture`` that reads
    ``request.param`` (None: SQLite, ``"postgres"``)."""
    metafunc.parametrize(fixture, STORES, indirect=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The PostgreSQL runs go last (after pytest's own grouping by fixture), so each
    session-scoped consortium or index is built once per store."""
    items.sort(key=lambda item: item.get_closest_marker("postgres") is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A ``postgres``, ``ray`` or ``netns`` test never skips: a skip is reported as a failure,
    with its reason."""
    report = yield
    marker = next((m for m in NEVER_SKIP if item.get_closest_marker(m) is not None), None)
    if report.skipped and marker is not None:
        report.outcome = "failed"
        report.longrepr = f"a {marker} test may not skip: {report.longrepr}"
    return report


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's throwaway PostgreSQL server. It never skips: a server that cannot start
    fails the tests that need it, with the reason."""
    try:
        with start_postgres() as server:
            yield server
            return
    except PostgresUnavailable as error:
        reason = str(error)
    pytest.fail(f"the throwaway PostgreSQL server did not start: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """The session's throwaway Ray cluster (head and a second node). It never skips: a cluster
    that cannot start fails the tests that need it, with the reason."""
    try:
        with start_ray_cluster() as cluster:
            yield cluster
            return
    except RayUnavailable as error:
        reason = str(error)
    pytest.fail(f"the throwaway Ray cluster did not start: {reason}", pytrace=False)


def new_database(request: pytest.FixtureRequest, label: str) -> str:
    """A fresh database on the session's PostgreSQL server, named after ``label``; its URL."""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    safe = "".join(c if c.isalnum() else "_" for c in label.lower())[:40]
    return server.create_database(f"{safe}_{next(_database_names)}")


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A node database of the test's own: a SQLite file, or a new PostgreSQL database."""
    if request.param == "postgres":
        return new_database(request, request.node.name)
    return sqlite_url(tmp_path / "node.db")


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
