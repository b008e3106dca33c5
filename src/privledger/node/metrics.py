"""One node's Prometheus metrics: what its worker did with tasks, and gauges read at each scrape.

Counted by the worker, once per task (never per frame): runs by kind and outcome, protocol
durations, payload bytes sent. Read when scraped, so true in whichever of the node's processes
serves them: tasks by this node's state of them (its database), the index's lag behind the chain
head. The worker's queue is read from the worker, in the process that runs it (the primary).
Labels are kinds, protocols, states and failure reasons: bounded sets, never a task's id.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from weakref import WeakKeyDictionary

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from privledger.evm.contracts import Kind
from privledger.node.components import PROTOCOL_NAMES
from privledger.node.context import NodeContext
from privledger.observability.metrics import node_registry
from privledger.store.models import LocalTask

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"  # served by the process that runs the worker (docs/operations.md)
# a 2^10 PSI on one machine takes ~50 ms, a vertical FL run minutes
PROTOCOL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)


def kind_label(kind: Kind) -> str:
    return kind.name.lower() if kind.name else str(int(kind))


def protocol_label(protocol: int) -> str:
    return PROTOCOL_NAMES.get(protocol, str(protocol))


class NodeMetrics:
    """The metrics of one node (one tenant of a host), and the registry that serves them."""

    def __init__(self, node: NodeContext) -> None:
        self.task_runs = Counter(
            "privledger_task_runs_total",
            "Tasks this node's worker took part in, by kind and outcome (anchored, or the "
            "failure reason it recorded)",
            ["kind", "outcome"],
            registry=None,
        )
        self.protocol_seconds = Histogram(
            "privledger_protocol_seconds",
            "This node's protocol run of a task, from every peer met to its output",
            ["kind", "protocol"],
            buckets=PROTOCOL_BUCKETS,
            registry=None,
        )
        self.tasks_running = Gauge(
            "privledger_tasks_running",
            "Tasks a worker thread of this node is running (checks, protocol, anchoring), by kind",
            ["kind"],
            registry=None,
        )
        self.bytes_sent = Counter(
            "privledger_wire_bytes_sent_total",
            "Payload bytes this node sent to its peers in tasks it ran (before framing)",
            ["kind", "protocol"],
            registry=None,
        )
        self._state = _NodeState(weakref.ref(node))  # the node's database keys this object
        self.registry: CollectorRegistry = node_registry(
            (
                self.task_runs,
                self.tasks_running,
                self.protocol_seconds,
                self.bytes_sent,
                self._state,
            )
        )

    def watch_worker(self, queues: Callable[[], Mapping[str, int]]) -> None:
        """Report the worker's queues (name -> tasks) at each scrape."""
        self._state.worker_queues = queues

    def running(self, kind: Kind) -> Gauge:
        """The gauge of running tasks of ``kind`` (the worker adds one, and takes it away)."""
        return self.tasks_running.labels(kind_label(kind))

    def ran(
        self, kind: Kind, protocol: int, seconds: float, bytes_sent: int, *, outcome: str
    ) -> None:
        """A task's protocol ran here and its outcome is anchored."""
        labels = (kind_label(kind), protocol_label(protocol))
        self.protocol_seconds.labels(*labels).observe(seconds)
        self.bytes_sent.labels(*labels).inc(bytes_sent)
        self.task_runs.labels(labels[0], outcome).inc()

    def failed(self, kind: Kind, reason: str) -> None:
        self.task_runs.labels(kind_label(kind), reason).inc()


class _NodeState:
    """Gauges read when scraped: the node's tasks by state, the index's lag, the worker's queues."""

    def __init__(self, node: weakref.ref[NodeContext]) -> None:
        self._node = node
        self.worker_queues: Callable[[], Mapping[str, int]] | None = None

    def describe(self) -> list[Metric]:
        return []  # read on each scrape: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        node = self._node()
        if node is None:
            return
        tasks = GaugeMetricFamily(
            "privledger_tasks", "Tasks this node keeps a record of, by its state", labels=["state"]
        )
        with Session(node.engine) as session:
            counts = session.exec(
                select(LocalTask.state, func.count()).group_by(col(LocalTask.state))
            ).all()
        for state, count in sorted(counts):
            tasks.add_metric([state], count)
        yield tasks
        indexed = node.indexer.next_block() - 1
        yield GaugeMetricFamily(
            "privledger_indexed_block", "The newest block in this node's index", value=indexed
        )
        try:
            head = int(node.ledger.client.w3.eth.block_number)
        except Exception as exc:  # the scrape still answers: the lag is what is missing
            logger.warning("metrics: no chain head: %s", exc)
        else:
            yield GaugeMetricFamily("privledger_chain_head_block", "The chain's newest block", head)
            yield GaugeMetricFamily(
                "privledger_indexer_lag_blocks",
                "Blocks on the chain not in this node's index yet",
                value=max(0, head - indexed),
            )
        if self.worker_queues is not None:
            queues = GaugeMetricFamily(
                "privledger_worker_tasks",
                "Tasks in the worker's queues: running (a thread busy with it), to_run "
                "(authorised, not finished here), to_settle (completed, not settled here)",
                labels=["queue"],
            )
            for name, size in self.worker_queues().items():
                queues.add_metric([name], size)
            yield queues


_BY_DATABASE: WeakKeyDictionary[Engine, NodeMetrics] = WeakKeyDictionary()
_CREATING = threading.Lock()


def metrics_of(node: NodeContext) -> NodeMetrics:
    """The node's metrics (per database: the tenants of a host never share one)."""
    found = _BY_DATABASE.get(node.engine)
    if found is None:
        with _CREATING:
            found = _BY_DATABASE.get(node.engine)
            if found is None:
                found = _BY_DATABASE[node.engine] = NodeMetrics(node)
    return found
