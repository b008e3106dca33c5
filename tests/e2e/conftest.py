"""A running local consortium for end-to-end tests: real anvil, real node processes, real HTTP."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, sync_playwright
from web3 import Web3
from web3.types import RPCEndpoint

from privledger import demo
from privledger.config import NodeSettings, Settings
from privledger.demo import NodeProcess, consortium, synthetic_customers, wait_healthy
from privledger.evm.anvil import free_port
from privledger.evm.artifacts import load_artifacts
from privledger.evm.deploy import Deployment, load_deployment
from privledger.evm.ledger import Ledger
from privledger.node.context import NODE_FILE
from privledger.node.keystore import Keystore
from privledger.node.peer_auth import SignedPeerCalls
from privledger.node.wires import FRAMES_PATH
from tests.conftest import new_database, parametrise_store

# the tests that run a second time on a consortium whose nodes keep their stores in PostgreSQL:
# the walking path, the audit log, and the fuzzers of both APIs (which found ids from requests
# overflowing PostgreSQL's 32-bit INTEGER)
ON_POSTGRES = {
    "test_walking_path.py::test_psi_task_is_authorised_run_anchored_and_settled",
    "test_audit.py::test_calls_grants_and_data_access_are_logged_and_provable",
    "test_api_fuzz.py::test_no_route_answers_500",
    "test_interop.py::test_no_interop_route_answers_500",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    test = f"{metafunc.definition.path.name}::{metafunc.definition.originalname}"
    if "running" in metafunc.fixturenames and test in ON_POSTGRES:
        parametrise_store(metafunc, "running")


@dataclass
class Running:
    info: dict[str, Any]
    nodes: dict[str, NodeProcess]
    org_ids: dict[str, int]
    people: dict[str, set[str]]
    data_dir: Path
    w3: Web3
    deployment: Deployment
    settings: Settings

    def ledger(self, dev_index: int) -> Ledger:
        artifacts = load_artifacts(self.settings.build_dir / "contracts")
        return Ledger.connect_dev(self.w3, artifacts, self.deployment, dev_index)

    def client(self, org: str, role: str) -> httpx.Client:
        return self.nodes[org].client(role)

    def import_dir(self, org: str) -> Path:
        """Where ``org``'s node registers files from by path: its own import directory."""
        return NodeSettings(org=org, home=self.settings.var_dir / "nodes" / org).import_dir

    def register(self, org: str, *, price: int = 10**12) -> str:
        body = {
            "path": f"{org}.csv",  # in its import directory
            "name": f"{org}-customers",
            "level": 2,
            "unitPrice": price,
        }
        with self.client(org, "data_owner") as owner:
            response = owner.post("/datasets", json=body)
            assert response.status_code == 201, response.text
            dataset_id: str = response.json()["datasetId"]
            return dataset_id


@contextmanager
def node_databases_in_postgres(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Every node the consortium starts gets a new PostgreSQL database of its own (its home
    and its process see it as ``PRIVLEDGER_DATABASE_URL``); yields the URLs by organisation."""
    urls: dict[str, str] = {}

    def with_database_of(start: Callable[..., Any]) -> Callable[..., Any]:
        def started(settings: Settings, org: str, *args: Any, **options: Any) -> Any:
            if org not in urls:
                urls[org] = new_database(request, f"node_{org}")
            with pytest.MonkeyPatch.context() as env:
                env.setenv("PRIVLEDGER_DATABASE_URL", urls[org])
                return start(settings, org, *args, **options)

        return started

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "prepare_node_home", with_database_of(demo.prepare_node_home))
        patch.setattr(demo, "start_node", with_database_of(demo.start_node))
        yield urls


_CONSORTIA: list[Running] = []  # every consortium the session started, for the guard below


# how a node may be stopped from outside: in a test run only the tests do that (and restart it),
# unless a signal meant for an exited process reaches one that reused its pid (pid_max is 32768);
# a stop signal ends a node in order, with exit status 0 (privledger.shutdown)
_KILLED_FROM_OUTSIDE = {0, -signal.SIGKILL}


def _revive_dead_nodes() -> tuple[list[str], list[str]]:
    """Restart each node of the session's consortia that is not running. What each died of,
    split into crashes (an exit status of its own, or a fatal signal such as SIGSEGV) and
    kills from outside; each with the end of its log."""
    crashed, killed = [], []
    for started in _CONSORTIA:
        for org, node in started.nodes.items():
            status = node.process.poll()
            if status is not None:
                tail = node.log_path.read_text(errors="replace").splitlines()[-15:]
                report = f"{org}'s node had exited ({status}):\n" + "\n".join(tail)
                (killed if status in _KILLED_FROM_OUTSIDE else crashed).append(report)
                node.restart()
                wait_healthy(node)
    return crashed, killed


@pytest.fixture(autouse=True)
def nodes_stay_up() -> Iterator[None]:
    """Every test starts with the session's nodes running: a node found dead is started again
    (later tests would otherwise fail as "connection refused"). One that crashed fails the test
    after the one that let it (a faulthandler stack in its log, see ``running``); one that was
    killed from outside, and left down, is reported as a warning. Checked before a test only: a
    test may kill a node it started and leave stopping it to its module's fixture."""
    crashed, killed = _revive_dead_nodes()
    for report in killed:
        warnings.warn(report, stacklevel=1)
    if crashed:
        pytest.fail("\n\n".join(crashed))
    yield


@pytest.fixture(scope="session")
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """The consortium; its nodes' stores are SQLite files, or PostgreSQL databases when the
    test is parametrised with ``"postgres"`` (see ``ON_POSTGRES``)."""
    store = getattr(request, "param", None)
    base = tmp_path_factory.mktemp(f"consortium-{store or 'sqlite'}")
    settings = Settings(var_path=base / "var", deployments_path=base / "deployments")
    # a peer that vanishes is noticed in seconds, not minutes
    patch = pytest.MonkeyPatch()
    patch.setenv("PRIVLEDGER_CHANNEL_TIMEOUT_S", "10")
    patch.setenv("PYTHONFAULTHANDLER", "1")  # a node that crashes leaves its stack in its log
    with (
        node_databases_in_postgres(request) if store == "postgres" else nullcontext() as urls,
        consortium(settings, free_port()) as (handle, info, nodes),
    ):
        if urls is not None:  # every node on a database of its own, none on a SQLite file
            assert set(urls) == set(nodes) and len(set(urls.values())) == len(nodes)
            assert not list((settings.var_dir / "nodes").glob("*/node.db"))
        data_dir = base / "data"
        people = synthetic_customers(
            data_dir,
            {"telecom": 1_500, "bank-a": 1_000, "bank-b": 800},
            {"bank-a": 321, "bank-b": 123},
        )
        w3 = Web3(Web3.HTTPProvider(handle.rpc_url))
        deployment = load_deployment(settings.deployments_dir, w3.eth.chain_id)
        assert deployment is not None
        running = Running(
            info=info,
            nodes=nodes,
            org_ids={org["name"]: org["orgId"] for org in info["orgs"]},
            people=people,
            data_dir=data_dir,
            w3=w3,
            deployment=deployment,
            settings=settings,
        )
        for org in people:  # each organisation's own data where its node imports it from
            shutil.copyfile(data_dir / f"{org}.csv", running.import_dir(org) / f"{org}.csv")
        _CONSORTIA.append(running)
        yield running
        _CONSORTIA.remove(running)
    patch.undo()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium driven by Playwright (never a downloaded browser build)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("no chromium on PATH: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


# --- helpers for failure-path tests (grant checks, restarts, forged frames) ------------------


def wait_until(condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f}s: {what}"
        time.sleep(0.1)


@contextmanager
def paused(node: NodeProcess) -> Iterator[Callable[[], None]]:
    """Freeze a node process (SIGSTOP): its kernel still accepts connections but nothing in it
    runs -- no worker tick, no answer -- until the yielded ``resume`` (or the exit) sends SIGCONT.
    """
    node.process.send_signal(signal.SIGSTOP)
    stopped = True

    def resume() -> None:
        nonlocal stopped
        if stopped:
            node.process.send_signal(signal.SIGCONT)
            stopped = False

    try:
        yield resume
    finally:
        resume()


def node_key(running: Running, org: str) -> X25519PrivateKey:
    """The org's X25519 node key, read from its node's keystore (the test holds the homes)."""
    return _keystore(running, org).node_key()


def node_account(running: Running, org: str) -> LocalAccount:
    """The org's node account (its operator), read from its node's keystore."""
    home = running.settings.var_dir / "nodes" / org
    return _keystore(running, org).account(json.loads((home / NODE_FILE).read_text())["account"])


def peer_client(running: Running, org: str) -> httpx.Client:
    """A client that signs its calls to other nodes' peer routes as ``org``'s node does."""
    return httpx.Client(auth=SignedPeerCalls(node_account(running, org), running.org_ids[org]))


def post_frames(running: Running, sender: str, target: str, body: bytes) -> httpx.Response:
    """``body`` posted as a frame stream to ``target``'s node, signed by ``sender``'s node."""
    headers = {"x-target-node-id": str(running.org_ids[target])}
    with peer_client(running, sender) as client:
        url = running.nodes[target].url + FRAMES_PATH
        return client.post(url, content=body, headers=headers, timeout=60)


def _keystore(running: Running, org: str) -> Keystore:
    settings = NodeSettings(org=org, home=running.settings.var_dir / "nodes" / org)
    return Keystore(settings.keystore_dir, settings.keystore_password)


def advance_chain_time(running: Running, seconds: int) -> int:
    """Move the chain's clock forward (anvil time travel) and mine; the new block's timestamp."""
    running.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
    running.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    return int(running.w3.eth.get_block("latest")["timestamp"])


def submit_as(
    running: Running, requester: str, mine: str, theirs: str, *, output: str = "requester"
) -> dict[str, Any]:
    """An ECDH-PSI task of ``requester`` joining its dataset with a partner's, through its node."""
    body = {
        "inputs": [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}],
        "feeWei": 10**16,
        "output": output,
        "protocol": "ecdh",
    }
    with running.client(requester, "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())


# --- helpers for killing a party mid-protocol (tests/e2e/test_dropout.py, test_failures.py) -----


def log_mark(node: NodeProcess) -> int:
    """Where the node's log ends now: count what it logs after this."""
    return node.log_path.stat().st_size


def _started(node: NodeProcess, since: int, task_id: int | None) -> int | None:
    """The task whose protocol runner ``node`` logged starting after ``since`` (None: not yet).
    The runners log this line at INFO and the test consortium's nodes run with -v."""
    pattern = re.compile(rf"task ({task_id or '[0-9]+'}): .* starts as ")
    with node.log_path.open("rb") as log:
        log.seek(since)
        found = pattern.search(log.read().decode(errors="replace"))
    return None if found is None else int(found.group(1))


def kill_when_started(
    running: Running,
    victim: str,
    task_id: int | None,
    marks: dict[str, int],
    parties: list[str],
    timeout_s: float = 90,
) -> int:
    """Kill ``victim``'s node, as a crash would, as soon as every one of ``parties`` (the
    task's data parties, the victim among them) has logged, after its ``marks`` offset, that
    its protocol runner started the task (the victim's first task when ``task_id`` is None):
    each has loaded its input and exchanged hellos with every peer, so all are inside the
    protocol. No test hook in the product. Returns the task's id."""
    node = running.nodes[victim]
    deadline = time.monotonic() + timeout_s
    while True:
        found = _started(node, marks[victim], task_id)
        if found is not None and all(
            _started(running.nodes[org], marks[org], found) for org in parties
        ):
            node.kill()
            return found
        assert time.monotonic() < deadline, f"the parties never all started task {task_id}"
        assert node.process.poll() is None, f"{victim}'s node died on its own"
        time.sleep(0.02)


def local_task(running: Running, org: str, task_id: int) -> dict[str, Any]:
    """The task as ``org``'s node sees it (on-chain record plus its local state)."""
    with running.client(org, "operator") as client:
        response = client.get(f"/tasks/{task_id}")
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        return task


def wait_local_state(
    running: Running, org: str, task_id: int, state: str, timeout_s: float = 60
) -> dict[str, Any]:
    """Poll ``org``'s node until its local state of the task is ``state``; the task record."""
    deadline = time.monotonic() + timeout_s
    while True:
        task = local_task(running, org, task_id)
        if task["localState"] == state:
            return task
        assert time.monotonic() < deadline, f"{org}: task {task_id} is {task['localState']}"
        time.sleep(0.05)


@contextmanager
def restarted_after(node: NodeProcess) -> Iterator[None]:
    """Run the block with ``node`` down (killed beforehand), then restart it and wait until it
    is healthy again -- whatever the block raised -- so later tests find it up."""
    try:
        yield
    finally:
        if node.process.poll() is not None:
            node.restart()
        wait_healthy(node)
