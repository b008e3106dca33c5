"""The audit log (F18): every API call, data access, model access and authorisation change, with
the caller, in a tamper-evident log anchored on chain in Merkle batches
(:mod:`privledger.node.logbook`).

An entry's digest is keccak256 over the canonical JSON of :func:`canonical` -- the entry's id,
time, action, actor, subject, outcome and task -- so an auditor holding an entry and its proof
document can recompute the digest and check it against the batch root on chain (the explorer's
verify page does both).
"""

from __future__ import annotations

import asyncio
import queue
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from sqlalchemy import Engine, Table, bindparam, update

from privledger.evm.merkle import ProofDocument
from privledger.node.context import NodeContext
from privledger.node.logbook import anchor_pending, entry_digest, proof_of
from privledger.store.models import AuditEntry, utc_now

AUDIT_LABEL = b"audit-log".ljust(32, b"\0")
ACTIONS = ("api", "authorisation", "data_access", "model_access")
# mutating calls that change who may use what: grants, approvals, relayed signed transactions,
# service callers, model registration
_AUTHORISATION = re.compile(
    r"^/api/v1/(grants|approvals|transactions|services/[^/]+/callers|models|tokens)(/|$)"
)


_COLUMNS = ("at", "action", "actor", "subject", "outcome", "task_id")  # with the id, hashed


def canonical(entry: AuditEntry) -> dict[str, Any]:
    """The fields the digest commits to."""
    return _canonical(entry.id, {name: getattr(entry, name) for name in _COLUMNS})


def _canonical(entry_id: int | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`canonical` of the entry ``entry_id`` whose columns are ``fields``."""
    return {
        "id": entry_id,
        "at": fields["at"].isoformat(),
        "action": fields["action"],
        "actor": fields["actor"],
        "subject": fields["subject"],
        "outcome": fields["outcome"],
        "taskId": fields["task_id"],
    }


def record(
    node: NodeContext,
    *,
    action: str,
    actor: str,
    subject: str,
    outcome: str,
    task_id: int | None = None,
) -> None:
    """Record one entry now (the worker's data and model accesses)."""
    write_entries(node.engine, [entry_row(action, actor, subject, outcome, task_id)])


def entry_row(
    action: str, actor: str, subject: str, outcome: str, task_id: int | None = None
) -> dict[str, Any]:
    """The column values of a new entry, without its id and digest."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    return {
        "at": utc_now(),
        "action": action,
        "actor": actor,
        "subject": subject[:500],
        "outcome": outcome[:500],
        "task_id": task_id,
    }


def write_entries(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """Insert entries in one transaction, each with the digest of its canonical JSON (the id,
    assigned by the database, is part of it)."""
    table: Table = AuditEntry.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        inserted = connection.execute(
            table.insert().returning(table.c.id, sort_by_parameter_order=True),
            [{**row, "digest": ""} for row in rows],
        )
        digests = [
            {"entry_id": entry_id, "entry_digest": _digest(entry_id, row)}
            for entry_id, row in zip(inserted.scalars().all(), rows, strict=True)
        ]
        connection.execute(
            update(table)
            .where(table.c.id == bindparam("entry_id"))
            .values(digest=bindparam("entry_digest")),
            digests,
        )


def _digest(entry_id: int, row: dict[str, Any]) -> str:
    return entry_digest(_canonical(entry_id, row))


def api_call_row(method: str, path: str, status: int, actor: str) -> dict[str, Any]:
    """One API call; a mutating call on grants, approvals, relays, callers or models is logged
    as an authorisation change."""
    mutating = method in ("POST", "PUT", "PATCH", "DELETE")
    action = "authorisation" if mutating and _AUTHORISATION.match(path) else "api"
    return entry_row(action, actor, f"{method} {path}", str(status))


class AuditWriter:
    """Writes the API calls' entries from one thread, many per database transaction, so the event
    loop never waits on the database; :meth:`record_api_call` returns once the entry is committed.
    The thread ends after a few idle seconds and starts again with the next entry."""

    IDLE_S = 5.0
    MAX_BATCH = 256

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], Future[None]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def record_api_call(self, method: str, path: str, status: int, actor: str) -> None:
        await asyncio.wrap_future(self.submit(api_call_row(method, path, status, actor)))

    def submit(self, row: dict[str, Any]) -> Future[None]:
        """Queue one entry; the future is done once it is committed (or failed to be)."""
        done: Future[None] = Future()
        with self._lock:
            self._queue.put((row, done))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit", daemon=True)
                self._thread.start()
        return done

    def _run(self) -> None:
        while True:
            try:
                batch = [self._queue.get(timeout=self.IDLE_S)]
            except queue.Empty:
                with self._lock:  # submit() starts a new thread once this one is gone
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                write_entries(self.engine, [row for row, _ in batch])
            except Exception as exc:  # every caller of the batch learns it was not recorded
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for _, done in batch:
                    done.set_result(None)


def anchor_pending_audit(node: NodeContext) -> int | None:
    return anchor_pending(node, AuditEntry, AUDIT_LABEL)


def audit_proof(node: NodeContext, entry: AuditEntry) -> ProofDocument | None:
    return proof_of(node, AuditEntry, entry, canonical)
