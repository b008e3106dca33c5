"""A node of several API processes (``PRIVLEDGER_API_WORKERS``, ``node run --api-workers``).

One process, the primary, runs the worker and owns the peer endpoint published on chain (the peer
port): the frames of a task reach the process that runs it because no other process serves that
port. The client API is served by the primary and ``api_workers - 1`` more processes, each
accepting on a socket of its own on the API port (``SO_REUSEPORT``: the kernel spreads the
connections over them). The processes share:

- nonces: a table in shared memory with a process-shared lock per signing account
  (:class:`ProcessNonces`), held while a transaction is signed and sent, so transactions of all
  processes get gapless, unique nonces;

and, through the node's PostgreSQL database:

- the chain index: one process indexes a block range at a time (an advisory lock,
  :mod:`privledger.store.locks`), the others find it stored;
- task changes: relayed with ``LISTEN``/``NOTIFY`` (:mod:`privledger.store.notices`), so a
  long-poll wakes in whichever process waits.

What stays per process: tokens admitted in the last few seconds (the same bound on a revocation as
in one process), the explorer's short-lived caches, and the counters of calls without credentials,
each process counting ``1/api_workers`` of the node's limit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from multiprocessing.synchronize import Event

from privledger.config import NodeSettings
from privledger.evm.client import NonceSlot
from privledger.node.context import NodeContext, NodeSetupError
from privledger.store.locks import AdvisoryLock
from privledger.store.notices import TaskNotices
from privledger.store.watch import task_changes

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
SUPERVISE_S = 1.0
_PR_SET_PDEATHSIG = 1


def check_api_workers(settings: NodeSettings) -> None:
    """Refuse a node of several API processes that cannot share its state: on SQLite, or with
    the peer endpoint on the API port."""
    if settings.api_workers == 1:
        return
    if not settings.resolved_database_url.startswith("postgresql"):
        raise NodeSetupError(
            f"{settings.api_workers} API processes need the node's store in PostgreSQL "
            "(PRIVLEDGER_DATABASE_URL=postgresql+psycopg://...): they share its nonces, index "
            "and task changes through it, which a SQLite file cannot do"
        )
    if settings.peer_port in (None, settings.port):
        raise NodeSetupError(
            "several API processes need a peer port of their own (--peer-port, "
            "PRIVLEDGER_PEER_PORT), other than the API port: peers' frames must reach the "
            "process that runs the tasks, and only that one serves the peer port"
        )


def share_between_processes(node: NodeContext, nonces: ProcessNonces) -> TaskNotices:
    """Share what the node's processes must agree on: nonces in ``nonces``, the rest in its
    database (before its first transaction); the relay of task changes it returns runs until
    stopped."""
    node.ledger.client.share_nonces(nonces)
    node.indexer.share_database(AdvisoryLock(node.engine, f"index:{node.indexer.cursor_name}"))
    notices = TaskNotices(node.engine, task_changes)
    notices.start()
    return notices


def per_process_limits(settings: NodeSettings) -> NodeSettings:
    """The settings of one of ``api_workers`` processes: its share of the anonymous limits."""
    workers = settings.api_workers
    return settings.model_copy(
        update={
            "anonymous_calls_per_s": settings.anonymous_calls_per_s / workers,
            "anonymous_burst": max(1, settings.anonymous_burst // workers),
        }
    )


def listen(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A listening TCP socket on ``host:port``; ``shared``: the first of the sockets the node's
    API processes each listen on (:func:`join`), refused like any other when the port is taken
    (``SO_REUSEPORT`` alone would share it with any socket of this user's that has it too)."""
    if shared:
        _server(host, port, reuse_port=False).close()  # taken: EADDRINUSE, as without sharing
    return _server(host, port, reuse_port=shared)


def join(host: str, port: int) -> socket.socket:
    """A socket of this process's own on the port of the primary's :func:`listen` ``shared``
    socket. The kernel hands each new connection to one of the sockets by a hash of its
    addresses, so connections spread evenly over the processes. One socket inherited by all
    did not: every process woke on a new connection, and the first to run accepted all those
    queued (asyncio accepts up to its backlog at once), so a client's pool of keep-alive
    connections could all land in one process while the others idled."""
    return _server(host, port, reuse_port=True)


def _server(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048, reuse_port=reuse_port)


def die_with_parent() -> None:
    """Have the kernel stop this process (SIGTERM) when the process that started it dies, so
    a killed node leaves no API process holding its port (Linux; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


ApiTarget = Callable[[NodeSettings, Event, int, "ProcessNonces"], None]


class ApiProcesses:
    """The API processes beside the primary: started, waited for, restarted when one dies,
    stopped with the node."""

    def __init__(self, target: ApiTarget, settings: NodeSettings) -> None:
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._target = target
        self._settings = settings
        self.nonces = ProcessNonces(self._context)
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._stop = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="api-processes")

    def start(self, count: int) -> None:
        """Start ``count`` processes, each serving on a socket it :func:`join` s, and return
        once each serves."""
        started = [self._spawn() for _ in range(count)]
        for process, ready in started:
            if not ready.wait(READY_TIMEOUT_S):
                raise NodeSetupError(
                    f"API process {process.pid} did not start in {READY_TIMEOUT_S:.0f} s "
                    f"(exit code {process.exitcode})"
                )
        self._supervisor.start()

    def _spawn(self) -> tuple[multiprocessing.process.BaseProcess, Event]:
        ready = self._context.Event()
        process = self._context.Process(
            target=self._target,
            args=(self._settings, ready, logging.getLogger().level, self.nonces),
            name=f"api-{len(self._processes) + 1}",
            daemon=True,
        )
        process.start()
        self._processes.append(process)
        return process, ready

    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_S):
            for process in list(self._processes):
                if process.is_alive() or self._stop.is_set():
                    continue
                logger.warning(
                    "API process %s exited (%s); starting another", process.pid, process.exitcode
                )
                self._processes.remove(process)
                self._spawn()

    def stop(self) -> None:
        self._stop.set()
        if self._supervisor.is_alive():
            self._supervisor.join()
        for process in self._processes:
            process.terminate()  # uvicorn's graceful shutdown
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()


NONCE_SLOTS = 64  # signing accounts one node's processes share nonces for
_ADDRESS_BYTES = 20
_UNKNOWN = -1


class ProcessNonces:
    """The nonces of the accounts a node signs with, shared by its processes: a table in shared
    memory and a process-shared lock per account (a :class:`privledger.evm.client.NonceBook`).

    Made by the primary before it starts the API processes, which inherit it. Taking an account's
    lock is a futex operation, not a round trip: the lock is on every transaction's path, held
    while the transaction is signed and handed to the chain, and on a loaded machine every round
    trip under it (to a database server, to another process) is a wait to be scheduled, which
    bounded two processes below one. A slot, once given to an account, stays its own; a value
    of -1 means "read the pending count from the chain", as after a refusal in one process.
    """

    def __init__(self, context: BaseContext, slots: int = NONCE_SLOTS) -> None:
        self._addresses = context.RawArray(ctypes.c_ubyte, slots * _ADDRESS_BYTES)
        self._values = context.RawArray(ctypes.c_longlong, [_UNKNOWN] * slots)
        self._table_lock = context.Lock()
        self._locks = [context.Lock() for _ in range(slots)]
        self._slots: dict[str, int] = {}  # this process's memo of the table

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_slots": {}}

    def _slot(self, address: str) -> int:
        found = self._slots.get(address)
        if found is not None:
            return found
        key = bytes.fromhex(address.removeprefix("0x"))
        if len(key) != _ADDRESS_BYTES or key == bytes(_ADDRESS_BYTES):
            raise ValueError(f"not an account address: {address!r}")
        table = memoryview(self._addresses).cast("B")
        with self._table_lock:
            for index in range(len(self._locks)):
                entry = table[index * _ADDRESS_BYTES : (index + 1) * _ADDRESS_BYTES]
                if entry == bytes(_ADDRESS_BYTES):  # free: the account's from now on
                    entry[:] = key
                if entry == key:
                    self._slots[address] = index
                    return index
        raise RuntimeError(f"the node signs with more than {len(self._locks)} accounts")

    @contextmanager
    def held(self, address: str) -> Iterator[NonceSlot]:
        index = self._slot(address)
        with self._locks[index]:
            value = self._values[index]
            slot = NonceSlot(None if value == _UNKNOWN else value)
            try:
                yield slot
            finally:
                self._values[index] = _UNKNOWN if slot.value is None else slot.value
