"""Where a node's heavy computation runs: its own worker processes or a Ray cluster.

Both are :class:`concurrent.futures.Executor` s to which the bucketed PSI
(:func:`privledger.protocols.psi.buckets.run_bucketed_psi`, ``executor=``) submits its per-bucket
tasks, and both record the peak resident memory of every worker process that ran one, measured
in the worker itself (``ru_maxrss``: the whole life of the process, so a long-lived Ray worker's
idle footprint counts too, and so do the pages of Ray's shared-memory object store it mapped to
read its arguments and write its results).

**Ray** (the ``cluster`` extra). :class:`RayExecutor` connects to a running cluster by the
address of its head (``ray start --head --port P`` on one host, ``ray start --address HEAD:P``
on each other host) and starts ``workers`` Ray actors spread over the cluster's nodes, one CPU
each: the party's pool of worker processes, on the cluster. Actors rather than plain Ray tasks
because a task's worker process belongs to one driver and Ray kills and restarts idle ones as
demand moves between drivers (here, the two parties): at 10^7 rows that churn started 20 worker
processes, each importing numpy, pyarrow and privledger again, and cost 1.66x the local pools'
time; an actor lives for the whole run, as a pool process does. Tasks travel as references to
privledger's functions plus their arguments (numpy arrays through Ray's object store), never as
code, and the bucketed PSI hands them the *paths* of the party's bucket files. What a cluster
therefore needs -- the same privledger on every node, the bucket files at the same path on every
node, a cluster of the organisation's own (Ray listens on all interfaces and does not encrypt) --
is in ``docs/ray.md``.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import resource
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["LocalPool", "MeasuredExecutor", "RayExecutor", "WorkerPeak", "bucket_executor"]


@dataclass(frozen=True)
class WorkerPeak:
    """The peak resident memory of one worker process that ran tasks."""

    node: str  # the Ray node id, or the host name for a local pool
    pid: int
    peak_rss_mb: float


Measured = tuple[Any, WorkerPeak]


def _measured(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Measured:
    """Runs ``fn`` in a worker and reports that worker's peak RSS (Linux: KiB) with its result."""
    result = fn(*args, **kwargs)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result, WorkerPeak(socket.gethostname(), os.getpid(), peak_mb)


class MeasuredExecutor(Executor):
    """An executor whose tasks report the peak memory of the worker process that ran them."""

    def __init__(self) -> None:
        self._peaks: dict[tuple[str, int], WorkerPeak] = {}
        self._lock = threading.Lock()

    @abc.abstractmethod
    def _launch(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Measured]:
        """Start ``_measured(fn, args, kwargs)`` (or its Ray form) on a worker."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        outer: Future[Any] = Future()
        outer.set_running_or_notify_cancel()

        def settle(inner: Future[Measured]) -> None:
            try:
                result, peak = inner.result()
            except BaseException as exc:  # delivered through the future, like a pool
                outer.set_exception(exc)
                return
            with self._lock:
                known = self._peaks.get((peak.node, peak.pid))
                if known is None or peak.peak_rss_mb > known.peak_rss_mb:
                    self._peaks[(peak.node, peak.pid)] = peak
            outer.set_result(result)

        self._launch(fn, args, kwargs).add_done_callback(settle)
        return outer

    def worker_peaks(self) -> list[WorkerPeak]:
        """Every worker process that ran a task so far, with its peak RSS."""
        with self._lock:
            return sorted(self._peaks.values(), key=lambda peak: (peak.node, peak.pid))


class LocalPool(MeasuredExecutor):
    """A local pool (e.g. :func:`~privledger.protocols.psi.buckets.process_pool`), measured;
    shutting this down shuts the pool down."""

    def __init__(self, pool: Executor) -> None:
        super().__init__()
        self._pool = pool

    def _launch(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Measured]:
        return self._pool.submit(_measured, fn, args, kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait, cancel_futures=cancel_futures)


class _RayWorker:
    """One worker process of a party's pool on the cluster (a Ray actor: one task at a time)."""

    def run(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Measured:
        import ray  # in a Ray worker: the cluster extra is there

        result, peak = _measured(fn, args, kwargs)
        return result, dataclasses.replace(peak, node=ray.get_runtime_context().get_node_id())


class _RayConnection:
    """This process's connection to a Ray cluster, shared by every :class:`RayExecutor` open in
    it (a node may run several bucketed tasks at once): the first connects, the last to close
    disconnects -- unless the process was connected before any of them (then it stays)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._ours = False

    def open(self, address: str) -> Any:
        import ray  # the cluster extra

        with self._lock:
            if self._users == 0 and not ray.is_initialized():
                # worker output stays in the cluster's logs: a party's stdout may carry its report
                ray.init(address=address, log_to_driver=False)
                self._ours = True
            self._users += 1
        return ray

    def close(self, ray: Any) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._ours:
                self._ours = False
                ray.shutdown()


_CONNECTION = _RayConnection()


class RayExecutor(MeasuredExecutor):
    """A pool of ``workers`` Ray actors on the cluster whose head is at ``address``
    (``host:port``), spread over its nodes, one CPU each; a task goes to the actor with the
    fewest in flight. Shares this process's connection to the cluster (connecting it if no one
    has); :meth:`shutdown` ends the actors and gives the connection back.

    The actors hold their CPUs for the whole run: the cluster needs ``workers`` free CPUs per
    party that runs on it at once, or the party waits for them (and its peer's ``timeout``)."""

    def __init__(self, address: str, workers: int) -> None:
        super().__init__()
        if workers < 1:
            raise ValueError("a Ray pool needs at least one worker")
        ray = _CONNECTION.open(address)
        self._ray: Any = ray
        self._open = True
        actor: Any = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(_RayWorker)
        self._actors = [actor.remote() for _ in range(workers)]
        self._in_flight = [0] * workers

    def _launch(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Measured]:
        with self._lock:
            chosen = self._in_flight.index(min(self._in_flight))
            self._in_flight[chosen] += 1
        future: Future[Measured] = self._actors[chosen].run.remote(fn, args, kwargs).future()
        future.add_done_callback(lambda _: self._finished(chosen))
        return future

    def _finished(self, chosen: int) -> None:
        with self._lock:
            self._in_flight[chosen] -= 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._open:
            self._open = False
            _CONNECTION.close(self._ray)


@contextmanager
def bucket_executor(ray_address: str | None, workers: int) -> Iterator[Executor | None]:
    """Where a node's bucketed PSI runs its buckets: ``workers`` actors on the Ray cluster at
    ``ray_address`` (``PRIVLEDGER_RAY_ADDRESS``), or None -- the protocol's own local pool."""
    if ray_address is None:
        yield None
        return
    with RayExecutor(ray_address, workers) as cluster:
        yield cluster
