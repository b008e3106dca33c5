"""Provenance weights: how a task's fee is split among the data providers that fed it.

For PSI a provider's weight is its matched rows times its dataset's unit price; providers that are
the requester itself get nothing, nor do providers that never anchored (absent: the task completed
without them). A derived dataset passes ``upstream_bps`` of what it earns to the owners of its
parents, in equal parts. When nothing was earned (no match, or free data) the fee is split equally
among the foreign providers that anchored, and with none it returns to the requester. Weights
are turned into basis points that sum to exactly 10,000 (the largest remainder method, ties broken
by order), and the whole record is hashed so the settlement on chain can be checked against it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass

from privledger.evm.hashing import keccak256

TOTAL_BPS = 10_000


@dataclass(frozen=True)
class Contribution:
    org_id: int
    dataset_id: str
    units: int  # e.g. matched rows
    unit_price: int  # wei per unit
    upstream_bps: int = 0  # share passed to the parents' owners
    parent_orgs: tuple[int, ...] = ()

    @property
    def value(self) -> int:
        return self.units * self.unit_price


@dataclass(frozen=True)
class ProvenanceRecord:
    task_id: int
    kind: str
    contributions: tuple[Contribution, ...]
    payees: tuple[int, ...]
    bps: tuple[int, ...]
    absent: tuple[int, ...] = ()  # participants the task completed without

    def canonical_json(self) -> bytes:
        record = asdict(self)
        if not self.absent:  # the record of a task every party finished, as before absences
            del record["absent"]
        return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()

    @property
    def hash(self) -> bytes:
        return keccak256(self.canonical_json())


def basis_points(weights: Sequence[int]) -> list[int]:
    """Integer basis points proportional to ``weights``, summing to 10,000 (largest remainder)."""
    total = sum(weights)
    if total <= 0 or any(weight < 0 for weight in weights):
        raise ValueError("weights must be non-negative with a positive sum")
    exact = [weight * TOTAL_BPS for weight in weights]
    shares = [value // total for value in exact]
    remainders = sorted(range(len(weights)), key=lambda i: (-(exact[i] % total), i))
    for index in remainders[: TOTAL_BPS - sum(shares)]:
        shares[index] += 1
    return shares


def _earnings(
    requester_org: int, contributions: Sequence[Contribution], absent: Collection[int]
) -> dict[int, int]:
    """Value earned per org, scaled by TOTAL_BPS so upstream shares stay exact integers."""
    earned: dict[int, int] = {}
    for contribution in contributions:
        if contribution.org_id in (requester_org, *absent) or contribution.value <= 0:
            continue
        value = contribution.value * TOTAL_BPS
        upstream = value * contribution.upstream_bps // TOTAL_BPS if contribution.parent_orgs else 0
        earned[contribution.org_id] = earned.get(contribution.org_id, 0) + value - upstream
        for parent_org in contribution.parent_orgs:
            share = upstream // len(contribution.parent_orgs)
            earned[parent_org] = earned.get(parent_org, 0) + share
    return {org: value for org, value in earned.items() if value > 0}


def provenance(
    task_id: int,
    kind: str,
    requester_org: int,
    contributions: Sequence[Contribution],
    absent: Collection[int] = (),
) -> ProvenanceRecord:
    """The settlement record of a completed task; ``absent`` lists the participants it
    completed without."""
    earned = _earnings(requester_org, contributions, absent)
    if not earned:
        foreign = {c.org_id for c in contributions if c.org_id not in (requester_org, *absent)}
        earned = dict.fromkeys(foreign or {requester_org}, 1)
    payees = tuple(sorted(earned))
    return ProvenanceRecord(
        task_id=task_id,
        kind=kind,
        contributions=tuple(contributions),
        payees=payees,
        bps=tuple(basis_points([earned[org] for org in payees])),
        absent=tuple(sorted(absent)),
    )
