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
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, bindparam, update

from privledger.evm.merkle import ProofDocument
from privledger.node.context import NodeContext
from privledger.node.logbook import anchor_pending, entry_digest, proof_of
from privledger.store.models import AuditEntry, utc_now

logger = logging.getLogger(__name__)

AUDIT_LABEL = b"audit-log".ljust(32, b"\0")
# resource_usage: what a task part cost the node (privledger.node.usage), anchored like the rest
ACTIONS = ("api", "authorisation", "data_access", "model_access", "resource_usage")
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


def api_call_row(
    method: str, path: str, status: int, actor: str, *, calls: int | None = None
) -> dict[str, Any]:
    """One API call, or ``calls`` calls counted together (outcome ``<status> x<calls>``); a
    mutating call on grants, approvals, relays, callers or models is logged as an authorisation
    change."""
    mutating = method in ("POST", "PUT", "PATCH", "DELETE")
    action = "authorisation" if mutating and _AUTHORISATION.match(path) else "api"
    outcome = str(status) if calls is None else f"{status} x{calls}"
    return entry_row(action, actor, f"{method} {path}", outcome)


ANONYMOUS = "anonymous"


@dataclass
class _Tally:
    first: datetime  # the first call counted
    calls: int = 0


class AuditWriter:
    """Writes the API calls' entries from one thread, many per database transaction, so the event
    loop never waits on the database; :meth:`record_api_call` returns once the entry is committed.

    Anonymous calls are counted rather than written one by one (:meth:`count_anonymous_call`):
    one entry per route, method and status every ``tally_s`` seconds, with the time of the first
    call and the count, so callers nobody can name grow the log with routes, statuses and time,
    never with the number of their calls. The counts of an interval are in the log when it ends
    (or at :meth:`flush`); a node that dies loses at most one interval of them.

    The thread ends after a few idle seconds and starts again with the next entry."""

    IDLE_S = 5.0
    MAX_BATCH = 256

    def __init__(self, engine: Engine, *, tally_s: float = 10.0) -> None:
        self.engine = engine
        self.tally_s = tally_s
        self._pending: list[tuple[list[dict[str, Any]], Future[None]]] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._tallies: dict[tuple[str, str, int], _Tally] = {}
        self._tallies_due: float | None = None  # monotonic time the current counts are written

    async def record_api_call(self, method: str, path: str, status: int, actor: str) -> None:
        await asyncio.wrap_future(self.submit(api_call_row(method, path, status, actor)))

    def count_anonymous_call(self, method: str, route: str, status: int) -> None:
        """Count one anonymous call; ``route`` is the route's template, never the path a caller
        chose, and ``method`` one of a fixed few, so the number of counts is bounded."""
        with self._wake:
            tally = self._tallies.setdefault((method, route, status), _Tally(utc_now()))
            tally.calls += 1
            if self._tallies_due is None:
                self._tallies_due = time.monotonic() + self.tally_s
                self._running()

    def flush(self) -> Future[None]:
        """Write the anonymous calls counted so far now; the future is done once they are."""
        with self._wake:
            counted = self._take_tallies()
            if counted:
                return self._queue(counted)
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def submit(self, row: dict[str, Any]) -> Future[None]:
        """Queue one entry; the future is done once it is committed (or failed to be)."""
        with self._wake:
            return self._queue([row])

    def _queue(self, rows: list[dict[str, Any]]) -> Future[None]:
        done: Future[None] = Future()
        self._pending.append((rows, done))
        self._running()
        return done

    def _running(self) -> None:
        """Wake the thread, or start it (under the lock)."""
        self._wake.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit", daemon=True)
            self._thread.start()

    def _take_tallies(self) -> list[dict[str, Any]]:
        """The counts as entries, and a fresh start (under the lock)."""
        rows = [
            {**api_call_row(method, route, status, ANONYMOUS, calls=tally.calls), "at": tally.first}
            for (method, route, status), tally in self._tallies.items()
        ]
        self._tallies = {}
        self._tallies_due = None
        return rows

    def _next_batch(self) -> list[tuple[list[dict[str, Any]], Future[None]]] | None:
        """What to write next, once there is something; None when idle long enough to end."""
        with self._wake:
            while True:
                due = self._tallies_due
                if due is not None and due <= time.monotonic():
                    counted = self._take_tallies()
                    if counted:
                        self._pending.append((counted, _logged_on_failure()))
                if self._pending:
                    batch = self._pending[: self.MAX_BATCH]
                    del self._pending[: self.MAX_BATCH]
                    return batch
                wait_s = self.IDLE_S if due is None else due - time.monotonic()
                idle = not self._wake.wait(max(wait_s, 0.0)) and due is None
                if idle and not self._pending and self._tallies_due is None:
                    self._thread = None  # the next entry starts a new thread
                    return None

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                write_entries(self.engine, [row for rows, _ in batch for row in rows])
            except Exception as exc:  # every caller of the batch learns it was not recorded
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for _, done in batch:
                    done.set_result(None)


def _logged_on_failure() -> Future[None]:
    """The future of counts the thread writes of its own accord: nobody waits on it, so a
    failure to write them is logged."""
    done: Future[None] = Future()
    done.add_done_callback(_log_failure)
    return done


def _log_failure(done: Future[None]) -> None:
    if (exc := done.exception()) is not None:
        logger.error("counts of anonymous calls not logged: %s", exc)


def anchor_pending_audit(node: NodeContext) -> int | None:
    return anchor_pending(node, AuditEntry, AUDIT_LABEL)


def audit_proof(node: NodeContext, entry: AuditEntry) -> ProofDocument | None:
    return proof_of(node, AuditEntry, entry, canonical)
