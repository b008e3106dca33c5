"""The operations cockpit's numbers (F19), from the explorer index: tasks over time, by kind and
by organisation, outcomes, data usage, fees allocated; and the health of every registered node,
probed over HTTP with a short timeout: up or down, nothing more."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import Session, col, select

from privledger.evm.contracts import Kind
from privledger.node.endpoints import usable_endpoint
from privledger.store.models import ChainBlock, ChainEvent, ChainRef

from . import charts
from .directory import Directory
from .story import kind_name

BUCKETS = 24
BUCKET_SIZES = (60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400)
PROBE_TIMEOUT_S = 1.5
HEALTH_TTL_S = 5.0
WEI_PER_ETH = 10**18
OUTCOMES = ("settled", "completed", "open", "failed")


@dataclass
class NodeHealth:
    org_id: int
    org_name: str
    endpoint: str
    up: bool
    latency_ms: float | None
    block_number: int | None
    error: str


@dataclass
class Metrics:
    tasks_total: int
    outcomes: dict[str, int]
    over_time: dict[str, Any]
    by_kind: list[tuple[str, int]]
    by_org: list[tuple[str, int]]
    usage_by_org: list[tuple[str, int]]
    fees_by_org: list[tuple[str, float]]  # in ether
    datasets: int
    head: int | None

    def charts(self) -> dict[str, str]:
        series = [(name, self.over_time[name]) for name in OUTCOMES]
        return {
            "over_time": charts.stacked_columns(self.over_time["labels"], series),
            "outcomes": charts.donut([(name, self.outcomes[name]) for name in OUTCOMES]),
            "by_kind": charts.horizontal_bars(self.by_kind),
            "by_org": charts.horizontal_bars(self.by_org),
            "usage": charts.horizontal_bars(self.usage_by_org, unit=" rows"),
            "fees": charts.horizontal_bars(self.fees_by_org, unit=" ETH"),
        }


def _outcome(status: str) -> str:
    return status if status in ("settled", "completed", "failed") else "open"


def _bucket_size(span: int) -> int:
    return next((size for size in BUCKET_SIZES if span / size <= BUCKETS), BUCKET_SIZES[-1])


def _label(start: int, size: int) -> str:
    moment = datetime.fromtimestamp(start, UTC)
    return moment.strftime("%m-%d" if size >= 86_400 else "%H:%M")


def _over_time(submitted: list[tuple[int, int]], outcome: dict[int, str]) -> dict[str, Any]:
    """Tasks per time bucket (by submission), split by their outcome now."""
    if not submitted:
        return {"labels": [], "bucket_s": 0, **{name: [] for name in OUTCOMES}}
    last = max(at for _, at in submitted)
    first = min(at for _, at in submitted)
    size = _bucket_size(max(1, last - first))
    end = last - last % size + size
    start = max(first - first % size, end - BUCKETS * size)
    count = (end - start) // size
    counts = {name: [0] * count for name in OUTCOMES}
    for task_id, at in submitted:
        if at >= start:
            counts[outcome.get(task_id, "open")][(at - start) // size] += 1
    labels = [_label(start + i * size, size) for i in range(count)]
    return {"labels": labels, "bucket_s": size, **counts}


def _final_states(session: Session) -> dict[int, str]:
    """The outcome of every task that reached one: settled, failed or completed."""

    def tasks(*names: str) -> set[int]:
        query = select(ChainRef.value).where(ChainRef.kind == "task", col(ChainRef.name).in_(names))
        return {int(value) for value in session.exec(query)}

    settled = tasks("TaskSettled")
    failed = tasks("TaskFailed", "TaskExpired") - settled
    completed = tasks("TaskCompleted") - settled - failed
    return {
        **dict.fromkeys(completed, "completed"),
        **dict.fromkeys(failed, "failed"),
        **dict.fromkeys(settled, "settled"),
    }


def metrics(session: Session, directory: Directory) -> Metrics:
    args = ChainEvent.args
    submitted_rows = session.exec(
        select(
            args["taskId"].as_integer(),
            ChainBlock.timestamp,
            args["kind"].as_integer(),
            args["requesterOrg"].as_integer(),
        )
        .join(ChainBlock, col(ChainBlock.number) == col(ChainEvent.block_number))
        .where(ChainEvent.event == "TaskSubmitted")
    ).all()
    submitted = [(int(task), int(at)) for task, at, _, _ in submitted_rows]
    outcome = _final_states(session)
    outcomes = Counter(outcome.get(task_id, "open") for task_id, _ in submitted)
    kinds = Counter(kind_name(Kind(int(kind))) for _, _, kind, _ in submitted_rows)
    orgs = Counter(directory.org_name(int(org)) for _, _, _, org in submitted_rows)

    owners = dict(
        session.exec(
            select(args["datasetId"].as_string(), args["ownerOrg"].as_integer()).where(
                ChainEvent.event == "DatasetRegistered"
            )
        ).all()
    )
    usage: Counter[str] = Counter()
    # one expression object in SELECT and GROUP BY: PostgreSQL groups by the same bound JSON key
    # only, and every args[...] would bind a parameter of its own
    dataset = args["datasetId"].as_string()
    used = session.exec(
        select(dataset, func.sum(args["count"].as_integer()))
        .where(ChainEvent.event == "UsageRecorded")
        .group_by(dataset)
    )
    for dataset_id, rows in used:
        usage[directory.org_name(owners.get(dataset_id, 0))] += int(rows)
    fees: dict[str, float] = {}
    payee = args["payeeOrg"].as_integer()
    allocated = session.exec(  # as floats: a sum of wei may not fit a 64-bit integer
        select(payee, func.sum(args["amount"].as_float()))
        .where(ChainEvent.event == "FeeAllocated")
        .group_by(payee)
    )
    for org, wei in allocated:
        name = directory.org_name(int(org))
        fees[name] = fees.get(name, 0.0) + float(wei) / WEI_PER_ETH
    return Metrics(
        tasks_total=len(submitted),
        outcomes={name: outcomes.get(name, 0) for name in OUTCOMES},
        over_time=_over_time(submitted, outcome),
        by_kind=kinds.most_common(),
        by_org=orgs.most_common(),
        usage_by_org=usage.most_common(),
        fees_by_org=sorted(fees.items(), key=lambda item: -item[1]),
        datasets=len(owners),
        head=session.exec(select(func.max(ChainBlock.number))).one(),
    )


def _probe(org_id: int, name: str, registered: str) -> NodeHealth:
    """Up if the node answers ``200 {"status": "ok"}`` within the timeout, else down and nothing
    more: the probe sends a request to an address an organisation chose, and its viewers learn
    no status code, error or timing of the answer (the cockpit is no port scanner). An endpoint
    that is not usable (``node.endpoints``) is no endpoint: nothing is sent to it."""
    endpoint = usable_endpoint(registered)
    if not endpoint:
        return NodeHealth(org_id, name, "", False, None, None, "no endpoint registered")
    started = time.perf_counter()
    try:
        response = httpx.get(f"{endpoint}/api/v1/health", timeout=PROBE_TIMEOUT_S)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        body = None
    if not isinstance(body, dict) or body.get("status") != "ok":
        return NodeHealth(org_id, name, endpoint, False, None, None, "")
    latency = round((time.perf_counter() - started) * 1000, 1)
    block = body.get("blockNumber", body.get("block_number"))
    return NodeHealth(
        org_id, name, endpoint, True, latency, block if isinstance(block, int) else None, ""
    )


class HealthProbe:
    """Probes every registered node at most once per ``HEALTH_TTL_S``, all in parallel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[float, list[NodeHealth]] | None = None

    def check(self, directory: Directory) -> list[NodeHealth]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < HEALTH_TTL_S:
                return self._cached[1]
            orgs = sorted(directory.orgs.values(), key=lambda o: o.org_id)
            with ThreadPoolExecutor(max_workers=max(1, min(16, len(orgs)))) as pool:
                found = list(pool.map(lambda o: _probe(o.org_id, o.name, o.endpoint), orgs))
            self._cached = (time.monotonic(), found)
            return found


class MetricsCache:
    """The last metrics, kept until the index's newest event changes (the cockpit polls often):
    its id and block hash, as a rewind may forget events and store others under their ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[tuple[Any, ...] | None, Metrics] | None = None

    def get(self, session: Session, directory: Directory) -> Metrics:
        found_newest = session.exec(
            select(ChainEvent.id, ChainEvent.block_hash)
            .order_by(col(ChainEvent.id).desc())
            .limit(1)
        ).first()
        newest = None if found_newest is None else tuple(found_newest)
        with self._lock:
            if self._cached is not None and self._cached[0] == newest:
                return self._cached[1]
            found = metrics(session, directory)
            self._cached = (newest, found)
            return found


def snapshot(metrics_now: Metrics, health: list[NodeHealth]) -> dict[str, Any]:
    """The cockpit's JSON: numbers, the charts as SVG, and node health."""
    return {
        "tasks_total": metrics_now.tasks_total,
        "outcomes": metrics_now.outcomes,
        "datasets": metrics_now.datasets,
        "head": metrics_now.head,
        "over_time": metrics_now.over_time,
        "by_kind": metrics_now.by_kind,
        "by_org": metrics_now.by_org,
        "usage_by_org": metrics_now.usage_by_org,
        "fees_by_org": metrics_now.fees_by_org,
        "charts": metrics_now.charts(),
        "health": [asdict(h) for h in health],
        "nodes_up": sum(1 for h in health if h.up),
        "generated_at": int(time.time()),
    }
