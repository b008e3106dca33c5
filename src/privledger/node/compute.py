"""Where a node's heavy computation runs: its own worker processes or a Ray cluster.

Both are :class:`concurrent.futures.Executor` s to which the bucketed PSI
(:func:`privledger.protocols.psi.buckets.run_bucketed_psi`, ``executor=``) submits its per-bucket
tasks, and both record the peak resident memory of every worker process that ran one, measured
in the worker itself (``ru_maxrss``: the whole life of the process, so a long-lived Ray worker's
idle footprint counts too).

**Ray** (the ``cluster`` extra). :class:`RayExecutor` connects to a running cluster by the
address of its head (``ray start --head --port P`` on one host, ``ray start --address HEAD:P``
on each other host) and runs every task as a Ray task, spread over the cluster's nodes. Tasks
travel as references to privledger's functions plus their arguments (numpy arrays through Ray's
object store), never as code, and the bucketed PSI hands them the *paths* of the party's bucket
files. So a cluster needs:

- on every node the same Python with privledger and its dependencies installed from the lock
  (``pip install privledger[cluster]`` with ``uv.lock``'s hashes);
- the party's scratch directory (``work_dir``; a node uses its results directory) at the same path
  on every node: nothing to do on one machine; across hosts a file system they all mount there;
- Ray's ports reachable only from the cluster's hosts and the node. Ray listens on all
  interfaces (it resolves 127.0.0.1 to the host's address), does not encrypt between its
  processes, and without token authentication (``RAY_AUTH_MODE=token``) anyone who reaches the
  head can run code on the cluster. Bucket files and task arguments are an organisation's own
  rows: the cluster must be that organisation's alone, like its node.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import resource
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

__all__ = ["LocalPool", "MeasuredExecutor", "RayExecutor", "WorkerPeak"]


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


def _on_ray_worker(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Measured:
    import ray  # in a Ray worker: the cluster extra is there

    result, peak = _measured(fn, args, kwargs)
    return result, dataclasses.replace(peak, node=ray.get_runtime_context().get_node_id())


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


class RayExecutor(MeasuredExecutor):
    """Tasks on the Ray cluster whose head is at ``address`` (``host:port``), spread over its
    nodes, one CPU each. Connects this process to the cluster unless it already is connected;
    :meth:`shutdown` disconnects it again only if it connected it."""

    def __init__(self, address: str) -> None:
        super().__init__()
        import ray  # the cluster extra

        self._ray: Any = ray
        self._connected_here = not ray.is_initialized()
        if self._connected_here:
            # worker output stays in the cluster's logs: a party's stdout may carry its report
            ray.init(address=address, log_to_driver=False)
        self._task: Any = ray.remote(_on_ray_worker).options(scheduling_strategy="SPREAD")

    def _launch(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Measured]:
        future: Future[Measured] = self._task.remote(fn, args, kwargs).future()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._connected_here:
            self._connected_here = False
            self._ray.shutdown()
