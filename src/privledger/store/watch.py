"""Wake whoever waits on a task when something about it changed in this process: the indexer
stored an event naming it, or a ``LocalTask`` row of it was committed (the worker's progress).

Waiters are coroutines (``GET /tasks/{id}?waitS=``): a change sets their asyncio event from any
thread, so a waiting request holds no thread and nothing polls. A change only says "look again":
the waiter reads the task itself, so a wake-up too many (another tenant's task with the same id on
another chain) costs one read and nothing else. A node of several processes relays its changes to
the others (:mod:`privledger.store.notices`), which wake their own waiters.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from privledger.store.models import LocalTask

_CHANGED = "privledger.changed_tasks"  # key of the task ids a session flushed, in session.info


class TaskWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self.relay: Callable[[set[int]], None] | None = None  # to the node's other processes

    @contextmanager
    def watching(self, task_id: int) -> Iterator[asyncio.Event]:
        """An event set whenever task ``task_id`` changes while the block runs (call from a
        coroutine: the event belongs to the running loop)."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(task_id, set()).add(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(task_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[task_id]

    def notify(self, task_ids: Iterable[int]) -> None:
        """Tasks ``task_ids`` changed here (from any thread): wake this process's waiters, and
        tell the node's other processes when there are any."""
        changed = set(task_ids)
        self.wake(changed)
        if self.relay is not None and changed:
            self.relay(changed)

    def wake(self, task_ids: Iterable[int]) -> None:
        """Wake this process's waiters on ``task_ids`` (from any thread)."""
        with self._lock:
            woken = [waiter for task_id in task_ids for waiter in self._waiters.get(task_id, ())]
        for loop, changed in woken:
            with suppress(RuntimeError):  # a closed loop: its waiter is gone
                loop.call_soon_threadsafe(changed.set)


task_changes = TaskWatch()


@event.listens_for(Session, "after_flush")
def _note_local_tasks(session: Session, _context: Any) -> None:
    changed = {row.task_id for row in (*session.new, *session.dirty) if isinstance(row, LocalTask)}
    if changed:
        session.info.setdefault(_CHANGED, set()).update(changed)


@event.listens_for(Session, "after_commit")
def _announce_local_tasks(session: Session) -> None:
    changed = session.info.pop(_CHANGED, None)
    if changed:
        task_changes.notify(changed)


@event.listens_for(Session, "after_rollback")
def _forget_local_tasks(session: Session) -> None:
    session.info.pop(_CHANGED, None)
