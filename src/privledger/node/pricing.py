"""The price per unit of a grant's terms (``price.wei``), held by the provider (F6).

The ledger knows a grant's fee floor (``min_fee_wei``) and refuses a smaller fee at submission;
it does not know the terms' price per unit, and could not check it then: the units a task uses
-- the keys a provider answers, the rows it matches or contributes -- are known only while it
runs. So the provider holds the fee to its price itself, with the units it is about to anchor,
before the messages that give the requester its output leave (:mod:`privledger.node.release`):
at its anchor, or, when the protocol delivers first, when it records the delivery -- then with
the units it anchors if the requester withholds its part (the keys it answered, its rows, the
aligned rows), the most it can anchor. A fee below the price fails the task with
TERMS_VIOLATION, which refunds it: the requester gets nothing of this provider's.

What the provider is paid is its share of the fee: the ledger splits the whole fee among the
providers by their anchored units times their inputs' unit prices (equally when none of them
weighs anything), each input weighing at most its registered rows, with the prices and rows the
ledger fixed when the task was submitted -- the task's charges (``TaskLedger.chargesOf``),
which this check reads, so that it and the ledger agree exactly: a provider controlled by the
requester can neither raise its price after this check nor anchor more units than its rows to
dilute this one's share. With other providers, this one counts each of them at the most it can
weigh, its rows, and so holds the fee to the least share it can get; of its own inputs'
earnings it counts only what stays with it, not what a derived input passes upstream to its
parents' owners (the requester may be one of them). A per-task unit
(``call``, ``flat``) prices the task as a whole. Protocols whose provider does not count what
it answers (their components do not list ``price`` in ``enforces``: the set operations) and
bucketed KKRT, whose provider delivers each bucket before it knows its units, are refused a
price per unit (:func:`privledger.node.terms.violation`); the requester's node holds a
two-party PSI or PIR to the price of its own rows before it submits
(:mod:`privledger.node.grants`).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from privledger.evm.contracts import MAX_UNITS, DataRegistry, InputCharge
from privledger.node.spec import TaskSpec
from privledger.node.terms import PER_TASK_UNITS, GrantTerms, Price, TermViolation

TOTAL_BPS = 10_000  # the ledger's basis points: an input's upstream share is out of these


def price_of(price: Price, units: int) -> int:
    """The least a provider is owed for ``units`` under ``price``."""
    return price.wei if price.unit in PER_TASK_UNITS else price.wei * units


def least_share(fee: int, own: int, total: int, payees: int) -> Fraction:
    """The least of ``fee`` a provider earns when its inputs earn it ``own`` of a settlement
    that weighs at most ``total`` in all (units times unit price, in basis points: what an
    input passes upstream to its parents' owners counts in the total, not in ``own``). The
    ledger splits the fee by weight, or equally among its ``payees`` when nothing weighs (with
    none, it refunds the fee)."""
    if total > 0:
        return Fraction(fee * own, total)
    return Fraction(fee, payees) if payees else Fraction(0)


def submission_charges(data: DataRegistry, spec: TaskSpec) -> tuple[InputCharge, ...]:
    """The charges the ledger would fix for ``spec``'s foreign inputs if it were submitted now
    (nothing anchored yet). Each input counts for its owner on chain, whatever org the spec names
    with it, as the ledger pays it."""
    charges = []
    for item in spec.inputs:
        dataset = bytes.fromhex(item.dataset.removeprefix("0x"))
        record = data.get_dataset(dataset)
        if record.owner_org != spec.requester:  # the requester is never paid for its own inputs
            charges.append(
                InputCharge(
                    dataset,
                    record.owner_org,
                    record.unit_price,
                    min(record.row_count, MAX_UNITS),
                    record.upstream_bps,
                    0,
                )
            )
    return tuple(charges)


def price_violation(
    charges: Sequence[InputCharge], terms: GrantTerms, *, org: int, fee: int, units: int
) -> TermViolation | None:
    """Why ``fee`` does not pay organisation ``org``, a provider of a task whose foreign inputs
    have ``charges``, the ``terms``' price for the ``units`` it anchors; None when it does (or
    the terms set no price)."""
    owed = price_of(terms.price, units)
    if owed == 0:
        return None
    own = total = 0
    payees: set[int] = set()
    for charge in charges:
        payees.add(charge.owner_org)
        anchored = units if charge.owner_org == org else charge.max_units
        weight = min(anchored, charge.max_units) * charge.unit_price
        if charge.owner_org == org:
            own += weight * (TOTAL_BPS - charge.upstream_bps)
        total += weight * TOTAL_BPS
    share = least_share(fee, own, total, len(payees))
    if share >= owed:
        return None
    unit, wei = terms.price.unit, terms.price.wei
    basis = f"{wei} wei per {unit}" if unit in PER_TASK_UNITS else f"{units} x {wei} wei per {unit}"
    return TermViolation(
        "price",
        f"the fee {fee} gives this provider at least {int(share)} wei, below its price "
        f"{owed} wei ({basis})",
    )
