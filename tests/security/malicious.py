"""A malicious requester against honest nodes on a real chain: who it is and what it can do.

"mallory" is an organisation of the e2e consortium (``tests/e2e/conftest.running``) with a node
of its own, modified the way a requester would modify it: its classification policy releases
every result over any data (so its node skips every release threshold), and the test holds its
home, its database and its key. It calls the contracts directly with that key, and serves the
honest providers whatever spec it likes from its own store (:meth:`Mallory.forge`). The honest
nodes are the consortium's, unchanged. Settlement attacks on the contracts alone use the evm
tests' ``consortium`` on the session's anvil.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from privledger.config import NodeSettings
from privledger.demo import NodeProcess
from privledger.evm.contracts import Task, TaskStatus
from privledger.evm.errors import ChainError
from privledger.evm.ledger import Ledger
from privledger.node.components import KINDS, protocol_id
from privledger.node.spec import TaskSpec
from privledger.store.db import make_engine
from privledger.store.models import LocalTask
from tests.e2e.conftest import Running

MALLORY_ACCOUNT = 5  # anvil development account of mallory's admin, data owner and operator
FEE = 10**16


@dataclass
class Mallory:
    running: Running
    node: NodeProcess
    org_id: int
    home: Path
    attacks: Path  # switches for the changes to its node (tests/security/modified_node.py)

    @contextmanager
    def attacking(self, *names: str) -> Iterator[None]:
        """With these changes of mallory's node switched on."""
        for name in names:
            (self.attacks / name).touch()
        try:
            yield
        finally:
            for name in names:
                (self.attacks / name).unlink()

    def attack_log(self, name: str, task_id: int, timeout_s: float = 120) -> str:
        """What mallory's modified node wrote about ``task_id`` in the attack's log."""
        log, deadline = self.attacks / f"{name}.log", time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = log.read_text().splitlines() if log.exists() else []
            for line in lines:
                number, _, outcome = line.partition(" ")
                if int(number) == task_id:
                    return outcome
            time.sleep(0.1)
        raise AssertionError(f"mallory's node wrote nothing about task {task_id} in {log}")

    @property
    def ledger(self) -> Ledger:
        """Mallory's own key, calling the contracts directly."""
        return self.running.ledger(MALLORY_ACCOUNT)

    def client(self, role: str = "operator") -> httpx.Client:
        return self.node.client(role)

    def register(self, header: list[str], rows: list[list[Any]], *, level: int = 2) -> str:
        """Register a dataset of mallory's own (written here) through its node."""
        path = self.running.import_dir("mallory") / f"mallory-{secrets.token_hex(4)}.csv"
        lines = [",".join(header)] + [",".join(str(value) for value in row) for row in rows]
        path.write_text("\n".join(lines) + "\n")
        body = {"path": str(path), "name": path.stem, "level": level, "unitPrice": 0}
        with self.client("data_owner") as owner:
            response = owner.post("/datasets", json=body)
            assert response.status_code == 201, response.text
            return str(response.json()["datasetId"])

    def submit(self, body: dict[str, Any]) -> httpx.Response:
        """A task body through mallory's node (whose submission checks are the product's)."""
        with self.client() as client:
            return client.post("/tasks", json={"feeWei": FEE, **body})

    def forge(
        self,
        spec: TaskSpec,
        grant_ids: list[bytes],
        *,
        fee: int = FEE,
        protocol: str | None = None,
        deadline_s: int = 600,
        run: bool = False,
    ) -> int:
        """Submit ``spec`` with mallory's key, bypassing its node's checks, and serve it to the
        providers from its node's store (as a modified node would): the task's id. ``protocol``
        is the protocol named on chain (by default the spec's own). Its worker leaves the task
        alone, so that what refuses it is the providers, unless ``run``: then it runs its side
        of the protocol as its node would."""
        ledger = self.ledger
        task_id = ledger.tasks.task_count() + 1
        self._store(task_id, spec, "submitted" if run else "done")  # served once on chain
        try:
            submitted = ledger.tasks.submit_task(
                spec_hash=spec.hash,
                kind=KINDS[spec.kind],
                protocol=protocol_id(protocol or spec.protocol),
                inputs=[bytes.fromhex(item.dataset[2:]) for item in spec.inputs],
                grant_ids=grant_ids,
                participants=spec.participants,
                deadline=now(self.running) + deadline_s,
                fee=fee,
            )
        except ChainError:
            self._store(task_id, None, "")
            raise
        assert submitted == task_id
        return task_id

    def _store(self, task_id: int, spec: TaskSpec | None, state: str) -> None:
        """Put a task's spec in mallory's node store, in ``state``, or take it out (None)."""
        engine = make_engine(NodeSettings(org="mallory", home=self.home).resolved_database_url)
        with Session(engine) as session:
            row = session.get(LocalTask, task_id)
            if row is not None:
                session.delete(row)
            if spec is not None:
                session.add(
                    LocalTask(
                        task_id=task_id,
                        spec_json=spec.canonical_json().decode(),
                        spec_hash="0x" + spec.hash.hex(),
                        state=state,
                    )
                )
            session.commit()
        engine.dispose()

    def result(self, task_id: int) -> httpx.Response:
        with self.client() as client:
            return client.get(f"/tasks/{task_id}/result")

    def balance(self) -> int:
        return self.ledger.metering.balance_of(self.org_id)


def now(running: Running) -> int:
    return int(running.w3.eth.get_block("latest")["timestamp"])


def wait_closed(running: Running, task_id: int, timeout_s: float = 90) -> Task:
    """The task once it failed or was settled on chain."""
    ledger = running.ledger(0)
    deadline = time.monotonic() + timeout_s
    while True:
        task = ledger.tasks.get_task(task_id)
        if task.status in (TaskStatus.FAILED, TaskStatus.SETTLED):
            return task
        assert time.monotonic() < deadline, f"task {task_id} is still {task.status.name}"
        time.sleep(0.2)


def grant(running: Running, owner: str, dataset: str, grantee: int, **fields: Any) -> bytes:
    """A grant by ``owner``'s data owner through its node: terms or kinds in ``fields``."""
    body = {"dataset": dataset, "granteeOrg": grantee, "expiresInS": 3_600, "maxUses": 10}
    with running.client(owner, "data_owner") as client:
        response = client.post("/grants", json={**body, **fields})
        assert response.status_code == 201, response.text
        return bytes.fromhex(response.json()["grantId"][2:])
