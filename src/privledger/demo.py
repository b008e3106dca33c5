"""The local consortium: one command starts a chain, deploys the ledger, onboards organisations,
starts one node process per organisation and walks the scenarios: a PSI task, and the
telecom-fraud story (:mod:`privledger.scenarios.fraud_list`): the police's labels and the
carrier's columns trained by vertical FL, the model registered, and a joint prediction over the
carrier's current subscribers that delivers a fraud list to the police.

Everything runs on 127.0.0.1 (the tests also place each part on a host of its own). The
organisations' accounts are anvil's development accounts, so this is for the local development
chain only.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
import random
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from sqlmodel import Session
from web3 import Web3

from privledger.api.deps import issue_token
from privledger.config import NodeSettings, Settings
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import DEFAULT_CHAIN_ID, AnvilHandle, free_port, start_anvil
from privledger.evm.client import ChainClient
from privledger.evm.compiler import compile_contracts
from privledger.evm.contracts import Role
from privledger.evm.deploy import Deployment, deploy_contracts, deployment_path
from privledger.evm.errors import ErrorDecoder
from privledger.evm.ledger import Ledger
from privledger.node.binding import is_bound_elsewhere
from privledger.node.context import NODE_FILE, init_node_home
from privledger.node.tls import ChainTrust, ChainVerifiedContext
from privledger.scenarios import fraud_list
from privledger.sdk import NodeClient
from privledger.store.db import make_engine

# name, dev-account index of its admin, roles of that admin, runs a node
DEMO_ORGS: tuple[tuple[str, int, Role, bool], ...] = (
    ("bank-a", 1, Role.DATA_OWNER | Role.OPERATOR, True),
    ("bank-b", 2, Role.DATA_OWNER | Role.OPERATOR, True),
    ("telecom", 3, Role.DATA_OWNER | Role.OPERATOR, True),
    # the regulator audits, and its node deals the correlated randomness of joint statistics
    ("regulator", 4, Role.AUDITOR | Role.OPERATOR, True),
    # holds labelled fraud numbers (the fraud scenario); account 5 is the security suite's
    ("police", 6, Role.DATA_OWNER | Role.OPERATOR, True),
)
DEALERS = ("regulator",)  # publish a dealer service on chain
TASK_FEE_WEI = 10**16
UNIT_PRICE_WEI = 10**12
FRAUD_SEED = 5  # the generator's documented run (scenarios/fraud_list.py)
DEMO_DATA_SEED = 23  # the customer lists: the same at every run
FRAUD_THRESHOLD = 0.3  # the fraud probability from which a number is on the police's list
LOG_TAIL_LINES = 20  # of a node's log, in the error when it exits at start
NODE_STOP_S = 15.0  # how long a node may take to stop gracefully before it is killed

logger = logging.getLogger(__name__)


def onboard_demo_orgs(ledger: Ledger) -> list[dict[str, Any]]:
    """Register the demo organisations once; a second run finds them on chain."""
    onboarded = []
    for name, index, roles, _ in DEMO_ORGS:
        admin = dev_account(index)
        org_id = ledger.orgs.org_of(admin.address)
        if org_id == 0:
            org_id = ledger.orgs.register_org(name, admin.address, "", bytes(32))
            if roles & Role.AUDITOR:
                ledger.orgs.grant_roles(org_id, admin.address, Role.AUDITOR)
            other_roles = roles & ~Role.AUDITOR
            if other_roles:
                ledger.as_account(admin).orgs.grant_roles(org_id, admin.address, other_roles)
            if name in DEALERS:  # its consent to deal for other organisations' tasks
                ledger.as_account(admin).orgs.set_dealer_service(org_id, True)
        onboarded.append(
            {
                "orgId": org_id,
                "name": name,
                "admin": admin.address,
                "roles": int(ledger.orgs.roles_of(admin.address)),
            }
        )
    return onboarded


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """httpx's default certificate check, made once: a client made with ``verify=True`` loads the
    CA bundle again, ~20 ms of CPU (~50 ms on the loaded test machine) per client, and the tests
    and the demo make a client per request or per poll."""
    return httpx.create_ssl_context()


@dataclass
class NodeProcess:
    org: str
    url: str
    process: subprocess.Popen[bytes]
    tokens: dict[str, str]
    command: list[str]
    env: dict[str, str]
    log_path: Path
    verify: ssl.SSLContext | bool = True  # how a client checks the node's HTTPS certificate

    @property
    def certificate_check(self) -> ssl.SSLContext | bool:
        """What a client of this node checks its certificate with (``verify`` as a context)."""
        return _default_tls() if self.verify is True else self.verify

    def client(self, role: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
            timeout=60,
            verify=self.certificate_check,
        )

    def stop(self) -> None:
        stop_nodes([self])

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start the node process again on the same port, home and chain."""
        self.process = spawn(self.command, self.env, self.log_path)

    def exited(self) -> str:
        """Why the process ended, for an error: its exit code and the last lines of its log."""
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            tail = ["(no log)"]
        return "\n".join([f"node {self.org} exited with code {self.process.returncode}:", *tail])


def stop_nodes(nodes: Sequence[NodeProcess]) -> None:
    """Stop node processes gracefully (SIGTERM); one that has not exited :data:`NODE_STOP_S`
    after its turn to be waited for came is killed. All are asked first, so that their
    shutdowns overlap: asked one at a time, each node's exit after its own shutdown took 1-3 s
    of a consortium's stop on the loaded two-core test machine."""
    asked = [node for node in nodes if node.process.poll() is None]
    for node in asked:
        node.process.terminate()
    for node in asked:
        try:
            node.process.wait(timeout=NODE_STOP_S)
        except subprocess.TimeoutExpired:
            node.kill()


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def archive_stale_database(settings: Settings, org: str, deployment: Deployment) -> Path | None:
    """Move aside the org's node database (SQLite) when it belongs to another deployment (the
    chain came back without its state and the ledger was deployed again): its tasks and index
    would collide with the new ones, so the node would refuse to start. The archive's path."""
    node_settings = NodeSettings(org=org, home=settings.var_dir / "nodes" / org)
    database = node_settings.home / "node.db"
    if node_settings.database_url is not None or not database.is_file():
        return None
    engine = make_engine(node_settings.resolved_database_url)
    try:
        stale = is_bound_elsewhere(engine, deployment)
    finally:
        engine.dispose()
    if not stale:
        return None
    archive = node_settings.home / "archive" / f"node-{time.strftime('%Y%m%d-%H%M%S')}.db"
    archive.parent.mkdir(mode=0o700, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        part = database.with_name(database.name + suffix)
        if part.exists():
            part.rename(archive.with_name(archive.name + suffix))
    (node_settings.home / "demo-tokens.json").unlink(missing_ok=True)  # tokens lived there
    return archive


def prepare_node_home(
    settings: Settings, org: str, index: int, roles: Role
) -> tuple[Path, dict[str, str]]:
    """Create the node's home once (dev key) and issue a demo token per role the org holds."""
    home = settings.var_dir / "nodes" / org
    node_settings = NodeSettings(org=org, home=home)
    if not (home / NODE_FILE).is_file():
        init_node_home(node_settings, dev_account(index).key)
    tokens_file = home / "demo-tokens.json"
    if tokens_file.is_file():
        return home, json.loads(tokens_file.read_text())
    address = dev_account(index).address
    with Session(make_engine(node_settings.resolved_database_url)) as session:
        tokens = {
            role: issue_token(session, user_name=f"{org}-{role}", address=address, role=role)
            for role, bit in (("data_owner", Role.DATA_OWNER), ("operator", Role.OPERATOR))
            if roles & bit
        }
    fd = os.open(tokens_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(tokens, handle)
    return home, tokens


def start_node(
    settings: Settings,
    org: str,
    home: Path,
    tokens: dict[str, str],
    rpc_url: str,
    log_dir: Path,
    *,
    host: str = "127.0.0.1",
    launcher: Sequence[str] = (),
    tls: ssl.SSLContext | None = None,
    port: int | None = None,
) -> NodeProcess:
    """Start ``org``'s node process on ``host`` (``port``, or a free port on 127.0.0.1; port
    8000 on any other address, a host of its own), its command prefixed by ``launcher`` (e.g.
    ``ip netns exec NAME`` to run it inside a network namespace); serving HTTPS when given the
    ``tls`` context its clients check the certificate with."""
    if port is None:
        port = _node_port() if host == "127.0.0.1" else 8000
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PRIVLEDGER_PROJECT_ROOT": str(settings.project_root),
        "PRIVLEDGER_DEPLOYMENT_FILE": str(
            deployment_path(settings.deployments_dir, Web3(Web3.HTTPProvider(rpc_url)).eth.chain_id)
        ),
        "PRIVLEDGER_TLS": str(tls is not None).lower(),
    }
    command = [*launcher, sys.executable, "-m", "privledger.cli", "-v", "node", "run"]
    command += ["--org", org, "--home", str(home), "--host", host, "--port", str(port)]
    command += ["--rpc-url", rpc_url]
    log_path = log_dir / f"{org}.log"
    process = spawn(command, env, log_path)
    url = f"{'https' if tls else 'http'}://{host}:{port}"
    return NodeProcess(org, url, process, tokens, command, env, log_path, tls or True)


_PORTS_GIVEN: set[int] = set()


def _node_port() -> int:
    """A free port that no node started by this process was given: :func:`free_port` alone can
    hand one port to two nodes, as the first binds it only after its self-test, seconds later."""
    while (port := free_port()) in _PORTS_GIVEN:
        pass
    _PORTS_GIVEN.add(port)
    return port


def fixed_ports(base_port: int) -> dict[str, int]:
    """Each demo organisation's node port from ``base_port`` on, in the order of
    :data:`DEMO_ORGS`; refused if one of them is taken."""
    ports = {name: base_port + offset for offset, (name, *_) in enumerate(DEMO_ORGS)}
    for name, port in ports.items():
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise PortTaken(f"port {port} (for {name}'s node) is taken: {exc}") from exc
    return ports


class PortTaken(RuntimeError):
    """A fixed port asked for is in use."""


def wait_healthy(node: NodeProcess, timeout_s: float = 300.0) -> None:
    """Wait until ``node`` answers its health check as its own organisation."""
    # every node of the consortium starts at once and runs its self-test first (node/selftest.py):
    # on a loaded two-core machine five of them took up to two minutes
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2, verify=node.certificate_check) as client:
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise RuntimeError(node.exited())
            try:
                health = client.get(f"{node.url}/api/v1/health")
                if health.status_code == 200:
                    answered = health.json().get("org")
                    if answered != node.org:  # another program holds the port it was given
                        raise RuntimeError(f"{node.url} answers as {answered!r}, not {node.org}")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"node {node.org} did not become healthy in {timeout_s:.0f}s")


def synthetic_customers(
    directory: Path, sizes: dict[str, int], shared: dict[str, int], *, seed: int | None = None
) -> dict[str, set[str]]:
    """Phone numbers per org; ``shared[org]`` of each bank's customers are also telecom's. Each
    row has a segment and a balance (a whole number, for joint statistics). The same ``seed``
    writes the same files (the demo's, so that a restart finds its datasets registered)."""
    directory.mkdir(parents=True, exist_ok=True)
    draw = secrets.SystemRandom() if seed is None else random.Random(seed)
    universe = iter(draw.sample(range(10**9, 10**10), sum(sizes.values())))
    telecom = {f"+86{next(universe)}" for _ in range(sizes["telecom"])}
    pool = sorted(telecom)
    people = {"telecom": telecom}
    for bank in ("bank-a", "bank-b"):
        overlap = set(draw.sample(pool, shared[bank]))
        own = {f"+86{next(universe)}" for _ in range(sizes[bank] - shared[bank])}
        people[bank] = overlap | own
    for org, phones in people.items():
        with (directory / f"{org}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["phone", "segment", "balance"])
            for phone in sorted(phones):
                segment = draw.choice(["retail", "sme", "premium"])
                writer.writerow([phone, segment, int(draw.lognormvariate(8, 1.5))])
    return people


def wait_for_task(
    client: httpx.Client, task_id: int, states: set[str], timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        task: dict[str, Any] = client.get(f"/tasks/{task_id}").raise_for_status().json()
        if task["status"] in states:
            return task
        if time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} still {task['status']} after {timeout_s:.0f}s")
        time.sleep(0.3)


def run_scenario(
    nodes: dict[str, NodeProcess], data_dir: Path, org_ids: dict[str, int]
) -> dict[str, Any]:
    """Datasets, a grant, a PSI task telecom ∩ bank-a, settlement; checked against plaintext."""
    people = synthetic_customers(
        data_dir,
        {"telecom": 3_000, "bank-a": 2_000, "bank-b": 1_500},
        {"bank-a": 700, "bank-b": 400},
        seed=DEMO_DATA_SEED,
    )
    datasets = {
        org: register_file(nodes[org], data_dir / f"{org}.csv", f"{org}-customers")
        for org in people
    }
    with nodes["bank-a"].client("data_owner") as owner:
        grant = (
            owner.post(
                "/grants",
                json={
                    "dataset": datasets["bank-a"],
                    "granteeOrg": org_ids["telecom"],
                    "kinds": ["psi"],
                    "expiresInS": 86_400,
                    "maxUses": 10,
                },
            )
            .raise_for_status()
            .json()
        )
    with nodes["telecom"].client("operator") as operator:
        task = (
            operator.post(
                "/tasks",
                json={
                    "inputs": [
                        {"dataset": datasets["telecom"], "column": "phone"},
                        {"dataset": datasets["bank-a"], "column": "phone"},
                    ],
                    "feeWei": TASK_FEE_WEI,
                },
            )
            .raise_for_status()
            .json()
        )
        final = wait_for_task(operator, task["taskId"], {"settled", "failed"}, timeout_s=300)
        if final["status"] != "settled":
            raise RuntimeError(f"task {task['taskId']} failed: {final['localFailure']}")
        result = operator.get(f"/tasks/{task['taskId']}/result").raise_for_status().json()
    expected = people["telecom"] & people["bank-a"]
    anchored = [e["args"] for e in final["timeline"] if e["event"] == "ResultAnchored"]
    allocated = [e["args"] for e in final["timeline"] if e["event"] == "FeeAllocated"]
    return {
        "taskId": task["taskId"],
        "status": final["status"],
        "datasets": datasets,
        "grantId": grant["grantId"],
        "intersectionSize": len(result["items"]),
        "plaintextIntersectionSize": len(expected),
        "intersectionCorrect": set(result["items"]) == expected,
        "digests": {str(a["org"]): a["resultDigest"] for a in anchored},
        "transcriptHashes": {str(a["org"]): a["transcriptHash"] for a in anchored},
        "settlement": {str(a["payeeOrg"]): a["amount"] for a in allocated},
        "fee": final["fee"],
    }


def register_file(node: NodeProcess, path: Path, name: str, *, level: int = 2) -> str:
    """Upload a CSV to ``node`` as its data owner, as from another machine, unless the node
    holds a dataset of this name with as many rows (the demo's data are the same at every run,
    so a restart registers nothing again); the dataset id."""
    with path.open() as rows:
        row_count = sum(1 for _ in rows) - 1  # the header
    with NodeClient(node.url, node.tokens["data_owner"]) as owner:
        for held in owner.datasets():
            if (held.name, held.row_count, held.retired) == (name, row_count, False):
                return held.dataset_id
        dataset = owner.register_file(path, name, level=level, unit_price=UNIT_PRICE_WEI)
    return dataset.dataset_id


def run_fraud_scenario(
    nodes: dict[str, NodeProcess], data_dir: Path, org_ids: dict[str, int]
) -> dict[str, Any]:
    """The telecom-fraud story: the police's labelled fraud numbers and the carrier's subscriber
    behaviour, aligned by PSI and trained by secret sharing with the regulator dealing (the
    carrier paid by its Shapley contribution); the police registers the model, which stays
    shared; the carrier grants it joint prediction on its current subscribers, and only the
    numbers over the threshold reach the police. Precision and recall against the generator's
    ground truth."""
    data = fraud_list.generate(data_dir / "fraud-list", seed=FRAUD_SEED)
    police = register_file(nodes["police"], data.police_csv, "fraud-cases", level=3)
    carrier = nodes["telecom"]
    past = register_file(carrier, data.carrier_past_csv, "subscriber-behaviour", level=3)
    current = register_file(carrier, data.carrier_current_csv, "subscribers-now", level=3)
    with carrier.client("data_owner") as owner:
        grant = {"granteeOrg": org_ids["police"], "expiresInS": 86_400, "maxUses": 1}
        owner.post("/grants", json={**grant, "dataset": past, "kinds": ["fl"]}).raise_for_status()
        terms = fraud_list.prediction_terms()
        owner.post("/grants", json={**grant, "dataset": current, "terms": terms}).raise_for_status()
    body = fraud_list.training_body(police, past, org_ids["regulator"], TASK_FEE_WEI)
    with nodes["police"].client("operator") as operator:
        training = _settled(operator, operator.post("/tasks", json=body))
        (part,) = (
            operator.get(f"/tasks/{training['taskId']}/result").raise_for_status().json()["items"]
        )
    trained = json.loads(part)
    with nodes["police"].client("data_owner") as owner:
        model = (
            owner.post(
                "/models",
                json={
                    "taskId": training["taskId"],
                    "name": f"fraud-model-{training['taskId']}",
                    "unitPrice": 0,
                },
            )
            .raise_for_status()
            .json()
        )
    body = fraud_list.prediction_body(
        model["modelId"],
        current,
        training["taskId"],
        threshold=FRAUD_THRESHOLD,
        dealer=org_ids["regulator"],
        fee_wei=TASK_FEE_WEI,
    )
    with nodes["police"].client("operator") as operator:
        prediction = _settled(operator, operator.post("/tasks", json=body))
        items = operator.get(f"/tasks/{prediction['taskId']}/result").raise_for_status().json()
    flagged = set(items["items"])
    precision, recall = fraud_list.precision_recall(flagged, data.current_fraud)
    return {
        "status": prediction["status"],
        "training": {
            "taskId": training["taskId"],
            "aligned": trained["aligned"],
            "labelled": data.labelled,
            "contributions": trained["contributions"],
            "settlement": _allocations(training),
            "fee": training["fee"],
        },
        "model": {"modelId": model["modelId"], "parents": model["parents"]},
        "prediction": {
            "taskId": prediction["taskId"],
            "threshold": FRAUD_THRESHOLD,
            "fraudListSize": len(flagged),
            "fraudInBatch": len(data.current_fraud),
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "settlement": _allocations(prediction),
        },
    }


def _settled(operator: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    task = response.raise_for_status().json()
    final = wait_for_task(operator, task["taskId"], {"settled", "failed"}, timeout_s=600)
    if final["status"] != "settled":
        raise RuntimeError(f"task {task['taskId']} failed: {final['localFailure']}")
    return final


def _allocations(task: dict[str, Any]) -> dict[str, int]:
    allocated = [e["args"] for e in task["timeline"] if e["event"] == "FeeAllocated"]
    return {str(a["payeeOrg"]): a["amount"] for a in allocated}


SCENARIOS = ("psi", "fraud")


@dataclass(frozen=True)
class Placement:
    """Where a part of the consortium runs: a host with an address of its own, reached through
    ``launcher``, the prefix of a command that runs there (``ip netns exec NAME`` for a network
    namespace)."""

    address: str
    launcher: tuple[str, ...] = ()


@contextmanager
def consortium(
    settings: Settings,
    port: int | None,
    placements: Mapping[str, Placement] | None = None,
    *,
    tls: bool = False,
    base_port: int | None = None,
    chain_options: Sequence[str] = (),
) -> Iterator[tuple[AnvilHandle, dict[str, Any], dict[str, NodeProcess]]]:
    """Chain, ledger, organisations and node processes; all stopped on exit. Everything runs on
    127.0.0.1, unless ``placements`` puts the chain (``"chain"``) and each organisation's node
    on a host of its own; then only the organisations placed run a node. With ``tls`` the nodes
    serve HTTPS, and their clients here accept the certificates the chain vouches for. The
    nodes on 127.0.0.1 take free ports, or with ``base_port`` :func:`fixed_ports`. Further anvil
    ``chain_options`` shape the chain (e.g. ``--block-time 1``: blocks at an interval, as on
    Besu, instead of one block per transaction)."""
    ports = {} if base_port is None else fixed_ports(base_port)
    artifacts = compile_contracts(settings)
    chain = (placements or {}).get("chain", Placement("127.0.0.1"))
    handle = start_anvil(
        settings.chain_dir,
        port=port or settings.chain_port,
        state_file=settings.chain_state_file,
        log_file=settings.var_dir / "logs" / "anvil.log",
        host=chain.address,
        launcher=chain.launcher,
        options=chain_options,
    )
    nodes: dict[str, NodeProcess] = {}
    try:
        w3 = Web3(Web3.HTTPProvider(handle.rpc_url))
        errors = ErrorDecoder(artifact.abi for artifact in artifacts.values())
        admin = ChainClient(w3, dev_account(0), errors)
        deployment = deploy_contracts(admin, artifacts, settings.deployments_dir)
        ledger = Ledger.from_client(admin, artifacts, deployment)
        orgs = onboard_demo_orgs(ledger)
        verify = ChainVerifiedContext(ChainTrust(ledger.orgs)) if tls else None
        for name, index, roles, runs_node in DEMO_ORGS:
            place = Placement("127.0.0.1") if placements is None else placements.get(name)
            if runs_node and place is not None:
                archived = archive_stale_database(settings, name, deployment)
                if archived is not None:
                    logger.warning("%s: the old node database is kept at %s", name, archived)
                home, tokens = prepare_node_home(settings, name, index, roles)
                nodes[name] = start_node(
                    settings,
                    name,
                    home,
                    tokens,
                    handle.rpc_url,
                    settings.var_dir / "logs",
                    host=place.address,
                    launcher=place.launcher,
                    tls=verify,
                    port=ports.get(name),
                )
        for node in nodes.values():
            wait_healthy(node)
        info = {
            "rpcUrl": handle.rpc_url,
            "chainId": deployment.chain_id,
            "contracts": deployment.addresses,
            "orgs": orgs,
            "nodes": {name: node.url for name, node in nodes.items()},
            "explorer": {name: f"{node.url}/explorer" for name, node in nodes.items()},
        }
        yield handle, info, nodes
    finally:
        stop_nodes(list(nodes.values()))
        handle.close()


def export_line(org: str, node: NodeProcess) -> str:
    """The shell line that points the CLI at ``org``'s node with its demo tokens."""
    variables = {
        "PRIVLEDGER_NODE_URL": node.url,
        "PRIVLEDGER_TOKEN": node.tokens.get("operator"),
        "PRIVLEDGER_OWNER_TOKEN": node.tokens.get("data_owner"),
    }
    assigned = " ".join(f"{name}={value}" for name, value in variables.items() if value)
    return f"export {assigned}  # {org}"


def reset_demo(settings: Settings) -> list[Path]:
    """Remove what the demo keeps between runs: the chain's state, the nodes' homes (keys,
    databases, tokens, datasets), the demo data and the local chain's deployment file; the
    paths removed. The next run starts from a new chain."""
    removed = []
    for path in (
        settings.chain_state_file.parent,
        settings.var_dir / "nodes",
        settings.var_dir / "demo-data",
        deployment_path(settings.deployments_dir, DEFAULT_CHAIN_ID),
    ):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def run_demo(
    settings: Settings,
    *,
    port: int | None,
    keep_running: bool,
    report: Callable[[dict[str, Any]], None],
    console: Console,
    scenarios: tuple[str, ...] = SCENARIOS,
    base_port: int | None = None,
) -> None:
    """Start the consortium, walk the scenarios (a PSI task; the telecom-fraud vertical FL task),
    report the summary; with ``keep_running`` serve until Ctrl-C."""
    with consortium(settings, port, base_port=base_port) as (handle, info, nodes):
        org_ids = {org["name"]: org["orgId"] for org in info["orgs"]}
        data_dir = settings.var_dir / "demo-data"
        summary: dict[str, Any] = dict(info)
        if "psi" in scenarios:
            console.print("scenario psi: telecom x bank-a private set intersection ...")
            summary["scenario"] = run_scenario(nodes, data_dir, org_ids)
        if "fraud" in scenarios:
            console.print("scenario fraud: police + telecom vertical FL, then a fraud list ...")
            summary["fraud"] = run_fraud_scenario(nodes, data_dir, org_ids)
        report(summary)
        if keep_running:
            console.print(f"consortium running: chain {handle.rpc_url}; Ctrl-C stops it")
            for name, node in nodes.items():
                console.print(
                    f"  {name}: API {node.url}/api/v1/docs  explorer {node.url}/explorer  "
                    f"workflow {node.url}/console"
                )
            console.print(
                "  explorer login: sign the challenge with the regulator's account "
                f"({dev_account(4).address}, anvil development account 4)"
            )
            console.print(
                "to use the CLI as an organisation, paste its line (PRIVLEDGER_TOKEN: its "
                "operator, PRIVLEDGER_OWNER_TOKEN: its data owner):"
            )
            for name, node in nodes.items():
                console.print(export_line(name, node), soft_wrap=True, highlight=False)
            try:
                while handle.process.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
