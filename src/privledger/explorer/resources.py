"""What this node's parts in tasks cost, for the explorer: one task's figures on its page, and
their totals in the cockpit (``privledger.node.usage`` says what each figure means)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Table, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session

from privledger.node.context import NodeContext
from privledger.node.usage import recorded_usage
from privledger.store.models import LocalTask


def task_resources(node: NodeContext, task_id: int) -> dict[str, Any] | None:
    """This node's figures for its part of the task; None if it took no part or has not
    anchored (each participant records its own: another's are on its node)."""
    with Session(node.engine) as session:
        usage = recorded_usage(session, task_id)
    return None if usage is None else {"org_id": node.org_id, **asdict(usage)}


def resource_totals(session: Session) -> dict[str, Any]:
    """The sums over every task part this node recorded: CPU seconds and bytes add up; the
    peak memory is the highest of the tasks' peaks (peaks do not add)."""
    table: Table = LocalTask.__table__  # type: ignore[attr-defined]
    task = table.c
    sums = sa_select(
        func.count(),
        func.coalesce(func.sum(task.cpu_seconds), 0.0),
        func.coalesce(func.sum(task.bytes_sent), 0),
        func.coalesce(func.sum(task.bytes_received), 0),
        func.coalesce(func.max(task.peak_rss_bytes), 0),
        func.coalesce(func.sum(case((task.usage_shared.is_(True), 1), else_=0)), 0),
    ).where(task.cpu_seconds.is_not(None))
    tasks, cpu, sent, received, peak, shared = session.connection().execute(sums).one()
    return {
        "tasks": int(tasks),
        "cpu_seconds": float(cpu),
        "bytes_sent": int(sent),
        "bytes_received": int(received),
        "peak_rss_bytes": int(peak),
        "shared_tasks": int(shared),
    }
