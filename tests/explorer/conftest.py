"""An explorer over a synthetic ledger index: 10^5 transactions with their events and references
written straight into a node database, served by the explorer routes with a stand-in node (no
chain: the pages under test read only the index) and an auditor session. The page-speed tests
run on a SQLite and on a PostgreSQL index."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from privledger.evm.contracts import Role
from privledger.evm.indexer import references
from privledger.explorer import router
from privledger.explorer.auth import ViewerSession
from privledger.explorer.web import current_viewer
from privledger.store.db import make_engine, sqlite_url
from privledger.store.models import ChainBlock, ChainEvent, ChainRef, ChainTx
from tests.conftest import new_database, parametrise_store

TRANSACTIONS = 100_000
ORGS = ("bank-a", "bank-b", "telecom", "regulator")
CONTRACTS = {
    "OrgRegistry": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "DataRegistry": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "GrantRegistry": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    "Metering": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    "TaskLedger": "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
    "BatchAnchor": "0x5FC8d32690cc91D4c39d9d3abcF0DA58E9e0f4A5",
}
FEE = 10**15
START = 1_790_000_000


def h32(*parts: object) -> str:
    return "0x" + hashlib.sha256(repr(parts).encode()).hexdigest()


@functools.cache
def account(org: int) -> str:
    return to_checksum_address("0x" + hashlib.sha256(f"acct{org}".encode()).hexdigest()[:40])


@dataclass
class Seed:
    """What was written, for the tests to look up."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    txs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    refs: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    tasks: int = 0

    def add(
        self,
        sender: str,
        contract: str,
        function: str,
        args: dict[str, Any],
        events: list[tuple[str, str, dict[str, Any]]],
    ) -> str:
        number = len(self.blocks) + 1
        tx_hash = h32("tx", number)
        self.blocks.append(
            {
                "number": number,
                "hash": h32("block", number),
                "parent_hash": h32("block", number - 1),
                "timestamp": START + number * 2,
                "miner": "0x0000000000000000000000000000000000000000",
                "gas_used": 90_000,
                "tx_count": 1,
            }
        )
        self.txs.append(
            {
                "hash": tx_hash,
                "block_number": number,
                "tx_index": 0,
                "sender": sender,
                "to": CONTRACTS[contract],
                "nonce": number,
                "value_wei": str(FEE if function == "submitTask" else 0),
                "contract": contract,
                "function": function,
                "args": args,
                "status": 1,
                "gas_used": 90_000,
            }
        )
        for kind, value in references(args):
            self.refs.append(self._ref(kind, value, function, tx_hash, -1, number))
        for log_index, (emitter, name, event_args) in enumerate(events):
            self.events.append(
                {
                    "block_number": number,
                    "block_hash": h32("block", number),
                    "tx_hash": tx_hash,
                    "log_index": log_index,
                    "contract": emitter,
                    "address": CONTRACTS[emitter],
                    "event": name,
                    "args": event_args,
                }
            )
            for kind, value in references(event_args):
                self.refs.append(self._ref(kind, value, name, tx_hash, log_index, number))
        return tx_hash

    @staticmethod
    def _ref(kind: str, value: str, name: str, tx: str, log: int, block: int) -> dict[str, Any]:
        return {
            "kind": kind,
            "value": value,
            "name": name,
            "tx_hash": tx,
            "log_index": log,
            "block_number": block,
        }


def build(count: int) -> Seed:
    """A ledger of ``count`` transactions: orgs, datasets with grants, and tasks that run to
    settlement (one in ten fails), each step its own transaction and block."""
    seed = Seed()
    admin = account(0)
    for org, name in enumerate(ORGS, start=1):
        seed.add(
            admin,
            "OrgRegistry",
            "registerOrg",
            {"name": name, "admin": account(org), "endpoint": "", "nodeKey": h32("key", org)},
            [
                (
                    "OrgRegistry",
                    "OrgRegistered",
                    {"orgId": org, "name": name, "admin": account(org)},
                ),
                (
                    "OrgRegistry",
                    "RolesGranted",
                    {"orgId": org, "account": account(org), "roles": 1},
                ),
            ],
        )
        roles = int(Role.AUDITOR) if name == "regulator" else int(Role.DATA_OWNER | Role.OPERATOR)
        seed.add(
            account(org),
            "OrgRegistry",
            "grantRoles",
            {"orgId": org, "account": account(org), "roles": roles},
            [
                (
                    "OrgRegistry",
                    "RolesGranted",
                    {"orgId": org, "account": account(org), "roles": roles},
                )
            ],
        )
    task_id = 0
    while len(seed.txs) < count:
        if task_id % 100 == 0:  # a new dataset pair, one derived from the other, and a grant
            owner = 1 + (task_id // 100) % 2
            parents: list[str] = [] if not seed.datasets else [seed.datasets[-1]]
            dataset = h32("dataset", len(seed.datasets))
            seed.datasets.append(dataset)
            seed.add(
                account(owner),
                "DataRegistry",
                "register",
                {
                    "schemaHash": h32("s", dataset),
                    "commitment": h32("c", dataset),
                    "rowCount": 1000,
                    "level": 2,
                    "unitPrice": 10**9,
                    "parents": parents,
                    "upstreamBps": 1000 if parents else 0,
                },
                [
                    (
                        "DataRegistry",
                        "DatasetRegistered",
                        {"datasetId": dataset, "ownerOrg": owner, "level": 2, "rowCount": 1000},
                    )
                ],
            )
            grant = h32("grant", dataset)
            seed.add(
                account(owner),
                "GrantRegistry",
                "grant",
                {
                    "datasetId": dataset,
                    "granteeOrg": 3,
                    "kinds": 1,
                    "expiry": START + 10**8,
                    "maxUses": 1000,
                },
                [
                    (
                        "GrantRegistry",
                        "GrantIssued",
                        {
                            "grantId": grant,
                            "datasetId": dataset,
                            "granteeOrg": 3,
                            "kinds": 1,
                            "expiry": START + 10**8,
                            "maxUses": 1000,
                        },
                    )
                ],
            )
        task_id += 1
        seed.tasks = task_id
        dataset = seed.datasets[-1]
        requester = account(3)
        seed.add(
            requester,
            "TaskLedger",
            "submitTask",
            {
                "specHash": h32("spec", task_id),
                "inputs": [h32("own", 0), dataset],
                "participants": [3, 1],
                "kind": 1,
                "deadline": START + 10**8,
            },
            [
                (
                    "GrantRegistry",
                    "GrantConsumed",
                    {
                        "taskId": task_id,
                        "grantId": h32("grant", dataset),
                        "used": task_id % 1000 + 1,
                    },
                ),
                (
                    "TaskLedger",
                    "TaskSubmitted",
                    {
                        "taskId": task_id,
                        "requesterOrg": 3,
                        "specHash": h32("spec", task_id),
                        "kind": 1,
                        "fee": FEE,
                        "deadline": START + 10**8,
                    },
                ),
                ("TaskLedger", "TaskAuthorised", {"taskId": task_id}),
            ],
        )
        if task_id % 10 == 7:  # one task in ten fails
            seed.add(
                requester,
                "TaskLedger",
                "failTask",
                {"taskId": task_id, "reasonCode": 5},
                [
                    ("TaskLedger", "TaskFailed", {"taskId": task_id, "org": 3, "reasonCode": 5}),
                    ("Metering", "FeeRefunded", {"taskId": task_id, "payerOrg": 3, "amount": FEE}),
                ],
            )
            continue
        for org in (3, 1):
            seed.add(
                account(org),
                "TaskLedger",
                "anchorResult",
                {
                    "taskId": task_id,
                    "resultDigest": h32("r", task_id, org),
                    "transcriptHash": h32("t", task_id),
                },
                [
                    (
                        "TaskLedger",
                        "ResultAnchored",
                        {
                            "taskId": task_id,
                            "org": org,
                            "resultDigest": h32("r", task_id, org),
                            "transcriptHash": h32("t", task_id),
                        },
                    )
                ],
            )
        seed.add(
            requester,
            "TaskLedger",
            "settleTask",
            {
                "taskId": task_id,
                "payeeOrgs": [1],
                "bps": [10000],
                "provenanceHash": h32("p", task_id),
            },
            [
                ("TaskLedger", "TaskCompleted", {"taskId": task_id}),
                (
                    "Metering",
                    "UsageRecorded",
                    {"taskId": task_id, "datasetId": dataset, "count": 120},
                ),
                (
                    "TaskLedger",
                    "TaskSettled",
                    {"taskId": task_id, "provenanceHash": h32("p", task_id), "fee": FEE},
                ),
                ("Metering", "FeeAllocated", {"taskId": task_id, "payeeOrg": 1, "amount": FEE}),
            ],
        )
        if task_id % 500 == 0:
            batch = task_id // 500
            seed.add(
                account(3),
                "BatchAnchor",
                "anchorBatch",
                {
                    "root": h32("root", batch),
                    "leafCount": 64,
                    "label": "0x" + b"audit-log".hex().ljust(64, "0"),
                },
                [
                    (
                        "BatchAnchor",
                        "BatchAnchored",
                        {
                            "batchId": batch,
                            "orgId": 3,
                            "root": h32("root", batch),
                            "leafCount": 64,
                            "label": "0x" + b"audit-log".hex().ljust(64, "0"),
                        },
                    )
                ],
            )
    return seed


TABLES = ((ChainBlock, "blocks"), (ChainTx, "txs"), (ChainEvent, "events"), (ChainRef, "refs"))


def cell(value: object) -> object:
    return json.dumps(value) if isinstance(value, dict) else value


def write(engine: Engine, seed: Seed) -> None:
    if engine.dialect.name == "postgresql":
        write_postgres(engine, seed)
    else:
        write_sqlite(engine, seed)


def write_postgres(engine: Engine, seed: Seed) -> None:
    """Bulk insert with COPY, then ANALYZE so the planner knows the tables' sizes."""
    connection = engine.raw_connection()
    try:
        with connection.driver_connection.cursor() as cursor:
            for table, attribute in TABLES:
                rows: list[dict[str, Any]] = getattr(seed, attribute)
                columns = ", ".join(f'"{name}"' for name in rows[0])
                with cursor.copy(f"COPY {table.__tablename__} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([cell(value) for value in row.values()])
        connection.commit()
        connection.driver_connection.autocommit = True
        try:
            connection.driver_connection.execute("ANALYZE")
        finally:
            connection.driver_connection.autocommit = False
    finally:
        connection.close()


def write_sqlite(engine: Engine, seed: Seed) -> None:
    """Bulk insert through the DB-API with the indexes dropped and rebuilt afterwards (the ORM,
    or inserting under the indexes, takes half a minute for 10^5 transactions)."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        tables = [t.__tablename__ for t in (ChainBlock, ChainTx, ChainEvent, ChainRef)]
        indexes = cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join('?' for _ in tables)})",
            tables,
        ).fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for table, attribute in TABLES:
            rows = getattr(seed, attribute)
            columns = ", ".join(f'"{name}"' for name in rows[0])
            marks = ", ".join("?" for _ in rows[0])
            sql = f"INSERT INTO {table.__tablename__} ({columns}) VALUES ({marks})"
            cursor.executemany(sql, [tuple(cell(v) for v in row.values()) for row in rows])
        for _, create in indexes:
            cursor.execute(create)
        connection.commit()
    finally:
        connection.close()


class StandInNode:
    """The parts of a ``NodeContext`` the index-backed pages touch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.org_id = 3
        self.indexer = SimpleNamespace(
            sync=lambda: 0,
            deployment=SimpleNamespace(addresses={k: v.lower() for k, v in CONTRACTS.items()}),
        )
        self.ledger = SimpleNamespace(metering=SimpleNamespace(balance_of=lambda org: 7 * FEE))


@dataclass
class Explorer:
    client: TestClient
    seed: Seed


def explorer_app(engine: Engine, roles: Role = Role.AUDITOR) -> FastAPI:
    app = FastAPI()
    app.state.node = StandInNode(engine)
    app.include_router(router)
    viewer = ViewerSession(account(4), 4, roles, False, float("inf"))
    app.dependency_overrides[current_viewer] = lambda: viewer
    return app


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "big" in metafunc.fixturenames and metafunc.definition.path.name == "test_page_speed.py":
        parametrise_store(metafunc, "big")


@pytest.fixture(scope="session")
def big(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Explorer]:
    """The explorer over 10^5 transactions: on SQLite, or on PostgreSQL (param ``"postgres"``)."""
    if getattr(request, "param", None) == "postgres":
        url = new_database(request, "explorer")
    else:
        url = sqlite_url(tmp_path_factory.mktemp("explorer") / "node.db")
    engine = make_engine(url)
    seed = build(TRANSACTIONS)
    write(engine, seed)
    with TestClient(explorer_app(engine)) as client:
        yield Explorer(client, seed)
    engine.dispose()
