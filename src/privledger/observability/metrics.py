"""The process's Prometheus metrics of its chain client, and the registry a node serves.

Each node has a registry of its own (tenants of one process must not read each other's numbers);
what the process measures for every node alike -- its JSON-RPC calls and how long its transactions
took to be mined -- is registered in each. Observing costs a lock and a bucket search (~1 µs),
against ~200 µs for the cheapest JSON-RPC round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.registry import Collector

# a local anvil answers in ~0.2 ms, a remote permissioned network in tens of ms; a transaction is
# mined at once on anvil (automine), within a block period (seconds) elsewhere
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONFIRMATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

CHAIN_RPC_SECONDS = Histogram(
    "privledger_chain_rpc_seconds",
    "JSON-RPC round trips to the chain on the lean path (transactions, index), by method",
    ["method"],
    buckets=RPC_BUCKETS,
    registry=None,
)
CHAIN_CONFIRMATION_SECONDS = Histogram(
    "privledger_chain_confirmation_seconds",
    "From signing a transaction to holding its receipt",
    buckets=CONFIRMATION_BUCKETS,
    registry=None,
)
PROCESS_COLLECTORS: tuple[Collector, ...] = (
    CHAIN_RPC_SECONDS,
    CHAIN_CONFIRMATION_SECONDS,
    ProcessCollector(registry=None),  # CPU, memory, open files (Linux), read when scraped
)


_RPC_BY_METHOD: dict[str, Histogram] = {}  # each method's child: labels() takes a lock each call


def observe_rpc(method: str, started: float) -> None:
    """A JSON-RPC call of ``method`` begun at ``started`` (``time.perf_counter()``) is answered."""
    child = _RPC_BY_METHOD.get(method)
    if child is None:
        child = _RPC_BY_METHOD.setdefault(method, CHAIN_RPC_SECONDS.labels(method))
    child.observe(time.perf_counter() - started)


def observe_confirmation(sent_at: float) -> None:
    """A transaction signed at ``sent_at`` (``time.time()``) has its receipt."""
    CHAIN_CONFIRMATION_SECONDS.observe(max(0.0, time.time() - sent_at))


def node_registry(collectors: Iterable[Collector]) -> CollectorRegistry:
    """A registry of one node's ``collectors`` and the process's chain and resource metrics."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (*PROCESS_COLLECTORS, *collectors):
        registry.register(collector)
    return registry
