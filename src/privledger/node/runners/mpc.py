"""Secret-sharing tasks: joint statistics and the multi-lending check (a dealer serves triples)."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import numpy as np
import numpy.typing as npt

from privledger.evm.contracts import FailureReason
from privledger.node.runners.base import Run, RunOutput, TaskRefused
from privledger.node.runners.builtin import BuiltinComponent
from privledger.node.spec import MAX_STATS_PARTIES, JointStatsSpec, LendingSpec
from privledger.protocols.mpc import lending, stats
from privledger.protocols.mpc.lending import LoanBook, multi_lending_check
from privledger.protocols.mpc.stats import joint_stats


def run(task: Run) -> RunOutput:
    spec = task.spec
    if isinstance(spec, LendingSpec):
        return _lending(task)
    if isinstance(spec, JointStatsSpec):
        return _stats(task, spec)
    raise TaskRefused(FailureReason.SPEC_MISMATCH, f"{spec.protocol} is not a statistics protocol")


def _stats(task: Run, spec: JointStatsSpec) -> RunOutput:
    """Joint count, sum, mean and variance; released to the requester only when the group is at
    least the minimum size, and run by a provider only when its own rows are (per bin, too)."""
    try:
        values = np.array([float(value) for value in task.keys], dtype=np.float64)
    except ValueError as exc:
        raise TaskRefused(FailureReason.POLICY_VIOLATION, f"a non-numeric value: {exc}") from exc
    if not np.isfinite(values).all():  # "nan" and "inf" parse, and would fall in no group
        raise TaskRefused(FailureReason.POLICY_VIOLATION, "a value that is not a finite number")
    if not task.is_requester:
        check_own_group(task, values, spec.histogram_edges)
    result = joint_stats(
        task.party(),
        values,
        requester=task.owners.index(spec.requester),
        min_group_size=task.min_release,
        frac_bits=spec.frac_bits,
        histogram_edges=spec.histogram_edges,
    )
    if result is None:
        return None, len(values)  # a provider is paid for the rows it contributed
    return [json.dumps(dataclasses.asdict(result), sort_keys=True)], result.count or 0


def check_own_group(
    task: Run, values: npt.NDArray[np.float64], edges: tuple[float, ...] | None
) -> None:
    """A provider's own threshold, before it shares anything: at least ``min_release`` of its
    own rows, and in each histogram bin either none of its rows or at least that many. The rows
    below the first edge and those above the last are groups too, held the same way: they fall
    in no bin, yet the count less the bins' sum tells the requester how many there are. The
    requester's rows never count toward it, so padding a bin with rows the requester knows
    cannot single out one of this provider's rows."""
    least = task.min_release
    if len(values) < least:
        raise TaskRefused(
            FailureReason.POLICY_VIOLATION,
            f"{len(values)} rows of this provider are below its threshold {least}",
        )
    if edges is None:
        return
    bins = np.asarray(edges, dtype=np.float64)
    counts, _ = np.histogram(values, bins=bins)
    below = np.count_nonzero(values < bins[0])
    above = np.count_nonzero(values > bins[-1])
    thin = [int(count) for count in (*counts, below, above) if 0 < count < least]
    if thin:
        raise TaskRefused(
            FailureReason.POLICY_VIOLATION,
            f"a histogram bin, or the rows outside its edges, holds {thin[0]} rows of this "
            f"provider, below its threshold {least}",
        )


def _lending(task: Run) -> RunOutput:
    """Multi-lending check: the requesting bank learns one customer's total across the other
    banks, or only whether it exceeds its limit; the others learn neither customer nor total."""
    mode: Literal["total", "exceeds"] = (
        "total" if task.spec.protocol == "lending-total" else "exceeds"
    )
    party = task.party()
    requester = task.owners.index(task.spec.requester)
    rows = task.rows
    try:
        if task.is_requester:
            if len(rows) != 1:
                raise ValueError("the query dataset holds exactly one customer row")
            customer = rows[0][0].decode()
            limit = int(rows[0][1]) if mode == "exceeds" and len(rows[0]) > 1 else None
            result = multi_lending_check(
                party, requester=requester, mode=mode, customer_id=customer, limit=limit
            )
        else:
            book = LoanBook.from_records((key.decode(), int(value)) for key, value in rows)
            multi_lending_check(party, requester=requester, mode=mode, book=book)
            return None, 1  # a bank is paid per call
    except ValueError as exc:
        raise TaskRefused(FailureReason.POLICY_VIOLATION, str(exc)) from exc
    if result is None:
        return None, 0
    answer = {"mode": mode, "banks": result.banks, "total": result.total}
    if mode == "exceeds":
        answer = {"mode": mode, "banks": result.banks, "exceeds": result.exceeds}
    return [json.dumps(answer, sort_keys=True)], 1


JOINT_STATS = BuiltinComponent(
    name="privledger.mpc.joint-stats",
    protocols=("joint-stats",),
    kind="stats",
    parties=(2, MAX_STATS_PARTIES),
    roles=("requester", "provider", "dealer"),
    outputs=("requester",),
    output_schema="count, sum, mean, variance (and histogram) as JSON",
    enforces=("min_result", "price"),
    security=stats,
    runner=run,
)
LENDING = BuiltinComponent(
    name="privledger.mpc.lending",
    protocols=("lending-total", "lending-exceeds"),
    kind="stats",
    parties=(2, MAX_STATS_PARTIES),
    roles=("requester", "provider", "dealer"),
    outputs=("requester",),
    output_schema="the customer's total across banks, or whether it exceeds the limit",
    enforces=("price",),
    security=lending,
    runner=run,
)
