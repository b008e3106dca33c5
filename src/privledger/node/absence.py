"""Completing a task without the parties that dropped out (F4, F6).

A party that anchored its result and finds the task still open :data:`WAIT_S` later reports the
participants that have not anchored as absent (``TaskLedger.reportAbsence``). If they stay away
for the ledger's grace (``ABSENCE_GRACE``), the same call completes the task without them and the
settlement pays only the providers that anchored; a live party keeps its pay by anchoring within
the grace, which ends the report. So a horizontal FL task that lost a client finishes and pays
the clients that stayed, instead of waiting for its deadline and refunding the requester; and a
provider whose requester never anchors is paid without waiting for the deadline either.

A task still open at its deadline (the grace had not run out, e.g. a provider that anchored as
told nothing shortly before it) is closed by the same party with ``TaskLedger.expireTask``: the
ledger then settles it to the providers that anchored, or refunds it, as its rules say -- an
escrow does not wait for someone to close it by hand. A party that has not anchored but could not
fail the task either (a provider recorded a delivery, then neither anchored nor answered) has the
task closed at its deadline the same way, without reporting anyone: its escrow does not wait for
someone to close it by hand either.
"""

from __future__ import annotations

import logging
import threading
import time

from privledger.evm.contracts import TaskLedger, TaskStatus
from privledger.evm.errors import ChainRevert

logger = logging.getLogger(__name__)

# How long after its own anchor a party waits for the others before reporting them: parties of
# one task anchor within a second or two of each other when all goes well.
WAIT_S = 10.0
POLL_S = 5.0  # while a report's grace runs: the chain's clock decides, so look at it now and then
# before a deadline this node waits for, look at the task at least this often: it may complete
# meanwhile, and the chain's clock may run ahead of this machine's
DEADLINE_POLL_S = 60.0
_OPEN = {TaskStatus.AUTHORISED, TaskStatus.RUNNING}


class AbsenceWatch:
    """The open tasks this node anchored, or waits to close at their deadline, each with when to
    look again."""

    def __init__(self, tasks: TaskLedger, *, wait_s: float = WAIT_S) -> None:
        self._tasks = tasks
        self._wait_s = wait_s
        self._due: dict[int, float] = {}
        self._anchored: set[int] = set()  # the rest are only closed at their deadline
        self._lock = threading.Lock()

    def watch(self, task_id: int) -> None:
        """Look at ``task_id`` again after the wait (this node has just anchored it)."""
        with self._lock:
            self._anchored.add(task_id)
        self._schedule(task_id, self._wait_s)

    def close_at_deadline(self, task_id: int) -> None:
        """Close ``task_id`` at its deadline if it is still open then (this node has not anchored
        it, and the ledger refused its failure)."""
        with self._lock:
            if task_id in self._due:
                return  # watched already
        self._schedule(task_id, 0.0)

    def due(self) -> list[int]:
        """The watched tasks to look at now."""
        now = time.monotonic()
        with self._lock:
            return sorted(task_id for task_id, when in self._due.items() if when <= now)

    def check(self, task_id: int) -> None:
        """Close ``task_id`` if it is open past its deadline; else, if this node anchored it,
        report its absent participants, or complete it without them once their grace is over.
        Forget it once it is no longer open."""
        task = self._tasks.get_task(task_id)
        if task.status not in _OPEN:
            self._forget(task_id)
            return
        left = task.deadline - self._chain_time()
        if left <= 0:
            self._expire(task_id)
            return
        with self._lock:
            anchored = task_id in self._anchored
        if not anchored:  # nothing to report: wait for the deadline
            self._schedule(task_id, min(DEADLINE_POLL_S, left + 1.0))
            return
        try:
            self._tasks.report_absence(task_id)
        except ChainRevert as exc:
            if exc.error == "TaskLedgerDeadlinePassed":  # passed since the chain time was read
                self._expire(task_id)
                return
            if exc.error != "TaskLedgerAbsenceGrace":  # closed meanwhile
                logger.info("task %d: no absence to report (%s)", task_id, exc)
                self._forget(task_id)
                return
            left = int(exc.args_by_name["notBefore"]) - self._chain_time()
            self._schedule(task_id, min(POLL_S, max(1.0, left + 1.0)))
            return
        if self._tasks.get_task(task_id).status in _OPEN:  # reported: wait out the grace
            logger.warning("task %d: participants reported absent", task_id)
            self._schedule(task_id, POLL_S)
        else:
            logger.warning("task %d completed without its absent participants", task_id)
            self._forget(task_id)

    def _expire(self, task_id: int) -> None:
        """Close ``task_id``, open past its deadline: settled or refunded as the ledger decides."""
        try:
            self._tasks.expire_task(task_id)
            logger.warning("task %d closed at its deadline", task_id)
        except ChainRevert as exc:  # another participant closed it first
            logger.info("task %d not closed at its deadline: %s", task_id, exc)
        self._forget(task_id)

    def _chain_time(self) -> int:
        return self._tasks.client.latest_timestamp()

    def _schedule(self, task_id: int, delay_s: float) -> None:
        with self._lock:
            self._due[task_id] = time.monotonic() + delay_s

    def _forget(self, task_id: int) -> None:
        with self._lock:
            self._due.pop(task_id, None)
            self._anchored.discard(task_id)
