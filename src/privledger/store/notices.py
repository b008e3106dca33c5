"""Task changes told across the processes of one node, through PostgreSQL ``LISTEN``/``NOTIFY``.

A long-poll (``GET /tasks/{id}?waitS=``) waits in whichever API process took the call, while the
change that should wake it happens in another: the worker's process records progress and indexes
events, an API process commits a submission. Each process relays what changes in it
(:attr:`privledger.store.watch.TaskWatch.relay`) as a notification on one channel of the node's
database, and wakes its own waiters on what the others relay; a notification only says "look
again", as a local change does. Two connections per process outside the engine's pool: one
listens, one sends (from a queue, so a commit never waits for it).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from privledger.store.watch import TaskWatch

if TYPE_CHECKING:  # the driver comes with the postgres extra, which a SQLite node may lack
    import psycopg

logger = logging.getLogger(__name__)

CHANNEL = "privledger_task_changes"
MAX_PAYLOAD = 7000  # PostgreSQL takes at most 8000 bytes per notification
RECONNECT_S = 1.0


def conninfo(engine: Engine) -> str:
    """The libpq URL of the engine's database (without SQLAlchemy's driver name)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def payloads(pid: int, task_ids: set[int]) -> list[str]:
    """``pid:id,id,...`` notifications of at most :data:`MAX_PAYLOAD` bytes each."""
    found, current = [], f"{pid}:"
    for task_id in sorted(task_ids):
        item = str(task_id)
        if len(current) + len(item) + 1 > MAX_PAYLOAD:
            found.append(current.rstrip(","))
            current = f"{pid}:"
        current += item + ","
    found.append(current.rstrip(","))
    return found


class TaskNotices:
    """Relay ``watch``'s changes to the node's other processes and theirs to ``watch``."""

    def __init__(self, engine: Engine, watch: TaskWatch) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("task changes are relayed between processes through PostgreSQL")
        self.conninfo = conninfo(engine)
        self.watch = watch
        self.pid = os.getpid()
        self._outbox: queue.SimpleQueue[set[int] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._listen, name="task-notices-in", daemon=True),
            threading.Thread(target=self._send, name="task-notices-out", daemon=True),
        ]
        self._listening = threading.Event()

    def start(self, timeout_s: float = 10.0) -> None:
        """Start relaying; returns once this process listens."""
        for thread in self._threads:
            thread.start()
        self.watch.relay = self._outbox.put
        if not self._listening.wait(timeout_s):
            raise RuntimeError(f"could not listen for task changes on {CHANNEL}")

    def stop(self) -> None:
        self.watch.relay = None
        self._stop.set()
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def _listen(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=1.0):
                            self._wake(notice.payload)
            except psycopg.Error as exc:
                logger.warning("listening for task changes failed (%s); reconnecting", exc)
                self._stop.wait(RECONNECT_S)

    def _wake(self, payload: str) -> None:
        sender, _, ids = payload.partition(":")
        if sender != str(self.pid) and ids:
            self.watch.wake(int(task_id) for task_id in ids.split(","))

    def _send(self) -> None:
        import psycopg

        connection: psycopg.Connection[tuple[object, ...]] | None = None
        while True:
            changed = self._outbox.get()
            if changed is None:
                break
            while not self._outbox.empty():  # whatever queued meanwhile goes in the same round
                more = self._outbox.get()
                if more is None:
                    self._stop.set()
                    break
                changed |= more
            try:
                if connection is None or connection.closed:
                    connection = psycopg.connect(self.conninfo, autocommit=True)
                for payload in payloads(self.pid, changed):
                    connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except psycopg.Error as exc:  # waiters elsewhere then answer at their deadline
                logger.warning("telling other processes of task changes failed: %s", exc)
                connection = None
            if self._stop.is_set():
                break
        if connection is not None:
            connection.close()
