"""Joint statistics over N parties' rows: count, sum, mean, variance and histogram.

Every party holds a column of real values (its own rows; possibly none); one party, the
*requester*, receives the result; all parties run the same parameters (checked first).

Protocol (all parties of the mesh, dealer of :mod:`.sharing`):

1. Local aggregation: each party computes, in plaintext on its own rows, its row count, its
   sum and sum of squares (float64, then fixed point with ``frac_bits``) and its per-bin
   histogram counts. Only these few aggregates are ever shared -- never a row -- which is what
   makes 10^6 rows per party cost one numpy pass plus a constant-size protocol.
2. The aggregates are additively shared and summed (:func:`.sharing.share_sum`).
3. Group-size threshold: the total count and each histogram bin count are compared with the
   policy's ``min_group_size`` by secure comparison (:func:`.compare.greater_equal`); the bits
   stay secret, are converted to arithmetic shares and *multiply* the outputs (a Beaver product),
   so a result or bin below the threshold is opened as zero. Nobody but the requester learns
   even whether something was suppressed.
4. Only the requested aggregates are opened, to the requester only; it derives
   ``mean = S / n`` and ``variance = (Q - S^2 / n) / (n - ddof)``.

Output and leakage (semi-honest; trusted, non-colluding dealer):

- requester: ``n`` (always, with any of count/sum/mean/variance -- it is the group size the
  threshold applies to), ``S`` when sum/mean/variance is asked, ``Q`` when variance is asked;
  ``(n, S, Q)`` is equivalent to ``(count, mean, variance)``, so nothing beyond the declared
  statistics. Histogram bins with fewer than ``min_group_size`` rows (including empty bins) come
  back as ``None``. The requester learns that a suppressed value is below the threshold.
  Differencing is *not* prevented across statistics: asking for count and a histogram in one
  request lets the requester subtract the released bins from the count (ask separately, or have
  the policy forbid it).
- other parties: nothing (all opened values are masked by dealer randomness).

Precision: each party's aggregates are rounded to 2^-f, so the sum is within ``N * 2^-(f+1)``
of the float64 sum, the mean within ``N * 2^-(f+1) / n``; ``Q`` likewise. Range: every party's
``|S| * 2^f`` and ``Q * 2^f`` must be below ``2^63 / N`` (e.g. ``Q < 2.8e13`` for f = 16 and
5 parties); larger data needs a smaller ``frac_bits``; a party with out-of-range aggregates
fails the task with ValueError before sharing anything.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from privledger.protocols.mpc.compare import greater_equal
from privledger.protocols.mpc.ring import DEFAULT_FRAC_BITS, U64, to_signed
from privledger.protocols.mpc.sharing import (
    Party,
    agree,
    bits_to_arith,
    mul,
    open_to,
    session,
    share_sum,
)

logger = logging.getLogger(__name__)

Statistic = Literal["count", "sum", "mean", "variance"]

PROTOCOL: Final = "privledger/mpc-stats"
VERSION: Final = 1
ALL_STATISTICS: Final[tuple[Statistic, ...]] = ("count", "sum", "mean", "variance")


@dataclass(frozen=True)
class JointStats:
    """The requester's result. ``suppressed``: the total count is below ``min_group_size``,
    so count/sum/mean/variance are all ``None``. A statistic that was not asked is ``None``,
    except ``count``, which the requester learns with any of them."""

    suppressed: bool
    count: int | None = None
    sum: float | None = None
    mean: float | None = None
    variance: float | None = None
    histogram: tuple[int | None, ...] | None = None


def joint_stats(
    party: Party,
    values: npt.ArrayLike,
    *,
    requester: int,
    min_group_size: int,
    statistics: Sequence[Statistic] = ALL_STATISTICS,
    histogram_edges: Sequence[float] | None = None,
    frac_bits: int = DEFAULT_FRAC_BITS,
    ddof: int = 0,
) -> JointStats | None:
    """Run the joint statistics protocol; the requester gets :class:`JointStats`, others None.

    ``min_group_size`` comes from the dataset's classification policy (a positive integer);
    ``histogram_edges`` are public, increasing bin edges (numpy semantics: the last bin is
    closed). All parties must pass the same keyword arguments.
    """
    wanted = _check_request(party, requester, min_group_size, statistics, histogram_edges, ddof)
    group = party.parties
    with session(party, "stats"):
        local = _local_aggregates(values, wanted, histogram_edges, frac_bits, len(group))
        params = {
            "protocol": PROTOCOL,
            "version": VERSION,
            "statistics": sorted(wanted),
            "edges": None if histogram_edges is None else [float(e) for e in histogram_edges],
            "min_group_size": min_group_size,
            "frac_bits": frac_bits,
            "ddof": ddof,
            "requester": requester,
            "group": list(group),
        }
        agree(party, group, params)
        totals = share_sum(party, group, local)
        scalars = _scalar_count(wanted)
        bins = totals.size - scalars
        counts = totals[:1] if scalars else totals[:0]
        counts = np.concatenate([counts, totals[scalars:]])
        keep = greater_equal(party, group, counts, [min_group_size] * counts.size, holder=group[0])
        gate = bits_to_arith(party, group, keep)
        factors = np.concatenate([np.repeat(gate[:1], scalars), gate[counts.size - bins :]])
        opened = open_to(party, group, mul(party, group, totals, factors), requester)
    if opened is None:
        return None
    return _result(to_signed(opened), wanted, scalars, histogram_edges is not None, frac_bits, ddof)


def _check_request(
    party: Party,
    requester: int,
    min_group_size: int,
    statistics: Sequence[Statistic],
    histogram_edges: Sequence[float] | None,
    ddof: int,
) -> set[Statistic]:
    if requester not in party.parties:
        raise ValueError(f"requester {requester} is not a party of the mesh")
    if type(min_group_size) is not int or min_group_size < 1:
        raise ValueError(f"min_group_size must be a positive integer, not {min_group_size!r}")
    wanted = set(statistics)
    if not wanted <= set(ALL_STATISTICS):
        raise ValueError(f"unknown statistics {sorted(wanted - set(ALL_STATISTICS))}")
    if not wanted and histogram_edges is None:
        raise ValueError("ask for at least one statistic or a histogram")
    if histogram_edges is not None:
        edges = np.asarray(histogram_edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)):
            raise ValueError("histogram_edges must be at least two finite numbers")
        if not np.all(np.diff(edges) > 0):
            raise ValueError("histogram_edges must be strictly increasing")
    if ddof not in (0, 1):
        raise ValueError("ddof must be 0 (population) or 1 (sample)")
    return wanted


def _scalar_count(wanted: set[Statistic]) -> int:
    """How many of (n, S, Q) the request needs."""
    if "variance" in wanted:
        return 3
    if wanted & {"sum", "mean"}:
        return 2
    return 1 if wanted else 0


def _local_aggregates(
    values: npt.ArrayLike,
    wanted: set[Statistic],
    edges: Sequence[float] | None,
    frac_bits: int,
    parties: int,
) -> U64:
    rows = np.asarray(values, dtype=np.float64)
    if rows.ndim != 1:
        raise ValueError(f"values must be one column (1-D), got {rows.ndim}-D")
    if not np.all(np.isfinite(rows)):
        raise ValueError("values must be finite (no NaN or inf)")
    scale = float(1 << frac_bits)
    bound = (1 << 63) // parties
    aggregates: list[int] = []
    scalars = _scalar_count(wanted)
    if scalars:
        aggregates.append(int(rows.size))
    if scalars >= 2:
        aggregates.append(_fixed(float(np.sum(rows)) * scale, bound, "sum"))
    if scalars == 3:
        aggregates.append(_fixed(float(np.dot(rows, rows)) * scale, bound, "sum of squares"))
    if edges is not None:
        aggregates += [int(c) for c in np.histogram(rows, bins=np.asarray(edges))[0]]
    return np.asarray([a & ((1 << 64) - 1) for a in aggregates], dtype=np.uint64)


def _fixed(scaled: float, bound: int, what: str) -> int:
    if not math.isfinite(scaled) or abs(scaled) >= bound:
        raise ValueError(f"local {what} is out of the fixed-point range; lower frac_bits")
    return round(scaled)


def _result(
    opened: npt.NDArray[np.int64],
    wanted: set[Statistic],
    scalars: int,
    has_histogram: bool,
    frac_bits: int,
    ddof: int,
) -> JointStats:
    histogram = None
    if has_histogram:
        histogram = tuple(int(c) if c > 0 else None for c in opened[scalars:])
    if not scalars:
        return JointStats(suppressed=False, histogram=histogram)
    count = int(opened[0])
    if count == 0:  # gated to zero: below min_group_size (min_group_size >= 1)
        return JointStats(suppressed=True, histogram=histogram)
    scale = float(1 << frac_bits)
    total = float(opened[1]) / scale if scalars >= 2 else None
    mean = None if total is None else total / count
    variance = None
    if scalars == 3 and total is not None and count > ddof:
        squares = float(opened[2]) / scale
        variance = max(squares - total * total / count, 0.0) / (count - ddof)
    return JointStats(
        suppressed=False,
        count=count,  # opened in any case: it is the group size the threshold applies to
        sum=total if "sum" in wanted else None,
        mean=mean if "mean" in wanted else None,
        variance=variance,
        histogram=histogram,
    )
