"""What a node's part in a task cost: CPU seconds, peak memory and payload bytes on the wire.

A task runs in a worker thread, in threads its protocol starts (e.g. ECDH-PSI's blinding pool),
in its channels' sender threads and, for the frames it receives, in the node's frame endpoint.
No thread knows all of them, so the figures are the *process's*, over the task's window -- from
the worker taking up the task's inputs to the end of its protocol:

- ``cpu_seconds``: user + system CPU time of the whole node process (every thread) and of its
  child processes that ended meanwhile (a bucketed PSI's process pool) over the window.
- ``peak_rss_bytes``: the kernel's high-water mark of the process's resident memory (Linux's
  ``VmHWM``), reset to the current RSS when the window opens (``/proc/self/clear_refs``) unless
  another task's window is open -- then the mark covers that one's window too. Child processes
  are not included. Where the mark cannot be reset (another OS, a read-only /proc) it is the
  process's high-water mark since it started. Whoever else reads the node's ``VmHWM`` (e.g.
  ``benchmarks/psi.py``'s ``node_hwm_mb``) sees it since the last task's window opened.
- bytes: the payload bytes the task's channels carried (:attr:`Channel.bytes_sent` and
  ``bytes_received``, the counters the node's metrics read), before framing: what one party
  sends, its peer receives.

Tasks that overlap in one process (the worker runs up to four; tenants of a host share it) each
count the others' CPU and memory: ``shared`` says that another task's window was open at some
point of this one's, and then the CPU and memory figures are upper bounds. Opening and closing
a window costs a few system calls (~45 µs), nothing while the task runs. The worker keeps the
figures in its task record and in its audit log (action ``resource_usage``).
"""

from __future__ import annotations

import logging
import resource
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from privledger.protocols.channel import Channel
from privledger.store.models import LocalTask

logger = logging.getLogger(__name__)

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK = "5"  # clear_refs: reset the peak RSS to the current RSS (Linux >= 4.0)


@dataclass(frozen=True)
class Usage:
    """One participant's resources for its part of a task (see the module docs)."""

    cpu_seconds: float
    peak_rss_bytes: int
    bytes_sent: int
    bytes_received: int
    shared: bool  # another task ran in this process meanwhile: CPU and memory are upper bounds

    def audit_outcome(self) -> str:
        """The figures as the audit log's entry states them (one line, ``name=value``)."""
        return (
            f"cpu_seconds={self.cpu_seconds:.6f} peak_rss_bytes={self.peak_rss_bytes} "
            f"bytes_sent={self.bytes_sent} bytes_received={self.bytes_received} "
            f"shared={str(self.shared).lower()}"
        )


class _Windows:
    """The process's open task windows: the first one opened resets the memory high-water mark,
    and each window learns whether another overlapped it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._opened = 0  # windows ever opened: one opened during another's shows here

    def open(self) -> tuple[int, bool]:
        with self._lock:
            if self._open == 0:
                _reset_peak()
            self._open += 1
            self._opened += 1
            return self._opened, self._open > 1

    def close(self, opened_as: int, shared: bool) -> bool:
        with self._lock:
            self._open -= 1
            return shared or self._open > 0 or self._opened != opened_as


_WINDOWS = _Windows()


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _reset_peak() -> None:
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK)
    except OSError as exc:  # the mark stays the process's since it started (module docs)
        logger.debug("peak memory not reset: %s", exc)


def _peak_rss_bytes() -> int:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # in kB
    except OSError:
        pass
    # Linux reports ru_maxrss in KiB (macOS in bytes; this branch is for neither /proc)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class UsageWindow:
    """The window of one task's part on this node, opened on entering the block: the worker
    enters it when the task takes up its inputs and calls :meth:`close` with the task's channels
    once its protocol ended; leaving the block closes it anyway (a failed task records nothing)."""

    def __init__(self) -> None:
        self._opened_as = 0
        self._shared = False
        self._cpu = 0.0
        self._closed = True

    def __enter__(self) -> UsageWindow:
        self._opened_as, self._shared = _WINDOWS.open()
        self._cpu = _cpu_seconds()
        self._closed = False
        return self

    def __exit__(self, *_: object) -> None:
        if not self._closed:
            self._closed = True
            _WINDOWS.close(self._opened_as, self._shared)

    def close(self, channels: Iterable[Channel]) -> Usage:
        """The task's usage so far; the window is closed (and must have been open)."""
        if self._closed:
            raise RuntimeError("the usage window is not open")
        self._closed = True
        cpu = _cpu_seconds() - self._cpu
        peak = _peak_rss_bytes()
        shared = _WINDOWS.close(self._opened_as, self._shared)
        seen = list(channels)
        return Usage(
            cpu_seconds=cpu,
            peak_rss_bytes=peak,
            bytes_sent=sum(channel.bytes_sent for channel in seen),
            bytes_received=sum(channel.bytes_received for channel in seen),
            shared=shared,
        )


def recorded_usage(session: Session, task_id: int) -> Usage | None:
    """This node's usage for its part of a task as its worker recorded it; None before it
    anchored (a task that failed here records none)."""
    row = session.get(LocalTask, task_id)
    if row is None or row.cpu_seconds is None:
        return None
    return Usage(
        cpu_seconds=row.cpu_seconds,
        peak_rss_bytes=row.peak_rss_bytes or 0,
        bytes_sent=row.bytes_sent or 0,
        bytes_received=row.bytes_received or 0,
        shared=bool(row.usage_shared),
    )
