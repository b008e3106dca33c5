"""The terms' price per unit as a provider holds the fee to it (node/pricing.py), against the
charges the ledger fixed for a task on a real chain (as a requester's node computes them before
it submits) and against what the ledger then pays."""

from __future__ import annotations

import secrets
from fractions import Fraction

import pytest

from privledger.node.pricing import least_share, price_of, price_violation, submission_charges
from privledger.node.spec import SpecInput, TaskSpec, parse_spec
from privledger.node.terms import GrantTerms, Price, violation

from .conftest import ZERO32, Consortium
from .test_settlement_rules import submit_priced

UNIT_WEI = 10


def _terms(unit: str = "matched_row", wei: int = UNIT_WEI) -> GrantTerms:
    return GrantTerms.model_validate(
        {"protocols": ["ecdh"], "columns": {"phone": ["join"]}, "price": Price(unit=unit, wei=wei)}
    )


def _spec(requester: int, inputs: list[tuple[bytes, int]], protocol: str = "ecdh") -> TaskSpec:
    items = [SpecInput(dataset="0x" + data.hex(), org=org, column="phone") for data, org in inputs]
    fields: dict[str, object] = {"dealer": 9} if protocol == "joint-stats" else {}
    return parse_spec({"protocol": protocol, "requester": requester, "inputs": items, **fields})


def test_a_per_unit_price_grows_with_the_units_and_a_per_task_one_does_not() -> None:
    assert price_of(Price(unit="matched_row", wei=7), 3) == 21
    assert price_of(Price(unit="query_key", wei=7), 0) == 0
    assert price_of(Price(unit="call", wei=7), 3) == 7
    assert price_of(Price(unit="flat", wei=7), 0) == 7


def test_the_least_share_splits_by_weight_or_equally_when_nothing_weighs() -> None:
    assert least_share(1_000, 1, 4, 2) == 250
    assert least_share(1_000, 5, 5, 1) == 1_000
    assert least_share(1_000, 0, 0, 4) == 250  # the ledger splits equally among the payees
    assert least_share(1_000, 0, 9, 2) == 0  # another provider may take it all
    assert least_share(10, 1, 3, 2) == Fraction(10, 3)
    assert least_share(1_000, 0, 0, 0) == 0  # no foreign input: the ledger refunds the fee


@pytest.mark.parametrize("fee", [799, 800])
def test_a_derived_input_is_held_to_its_price_net_of_what_it_passes_upstream(
    consortium: Consortium, fee: int
) -> None:
    """bank-a's input is derived from a dataset of the telecom, the requester, and passes half
    of what it earns upstream: the half that goes back to the telecom does not pay bank-a's
    price (red team)."""
    telecom, bank_a = consortium.telecom, consortium.bank_a
    parent = consortium.dataset(telecom)
    derived = consortium.dataset(bank_a, parents=(parent,), upstream_bps=5_000)
    spec = _spec(telecom.org_id, [(parent, telecom.org_id), (derived, bank_a.org_id)])
    grants = [ZERO32, consortium.grant(derived, bank_a, telecom)]
    members = [telecom, bank_a]
    task_id = submit_priced(consortium, telecom, [parent, derived], grants, members, fee=fee)
    charges = telecom.ledger.tasks.charges_of(task_id)
    assert charges == submission_charges(consortium.admin.data, spec)
    problem = price_violation(charges, _terms(), org=bank_a.org_id, fee=fee, units=40)
    assert (problem is None) is (fee >= 800), problem

    for member, units in ((telecom, 0), (bank_a, 40)):
        member.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, units)
    telecom.ledger.tasks.settle_task(task_id, ZERO32)
    paid = consortium.admin.metering.balance_of(bank_a.org_id)
    assert (paid >= 40 * UNIT_WEI) is (problem is None), paid


def test_a_sole_provider_is_owed_its_price_out_of_the_whole_fee(consortium: Consortium) -> None:
    telecom, bank_a = consortium.telecom, consortium.bank_a
    own, theirs = consortium.dataset(telecom), consortium.dataset(bank_a, price=0)
    spec = _spec(telecom.org_id, [(own, telecom.org_id), (theirs, bank_a.org_id)])
    charges = submission_charges(consortium.admin.data, spec)
    held = {"org": bank_a.org_id, "units": 40}
    assert price_violation(charges, _terms(), fee=400, **held) is None
    problem = price_violation(charges, _terms(), fee=399, **held)
    assert problem is not None and problem.term == "price"
    assert "400 wei (40 x 10 wei per matched_row)" in problem.message, problem.message
    assert price_violation(charges, _terms("call", 500), fee=499, **held) is not None
    assert price_violation(charges, _terms(wei=0), fee=0, **held) is None


@pytest.mark.parametrize(("fee", "mislabelled"), [(3_999, False), (4_000, False), (3_999, True)])
def test_with_other_providers_the_price_holds_however_many_rows_they_anchor(
    consortium: Consortium, fee: int, mislabelled: bool
) -> None:
    """bank-a (100 rows) and bank-b (300 rows) provide at the same unit price: bank-a counts
    bank-b at all its rows and asks for four times its price; what it passes, on the task's
    charges, is what the ledger pays it when bank-b anchors every row -- or more: no more weighs
    (tests/security/test_price_snapshot.py). A spec that names bank-b's dataset as the
    requester's own does not make the requester's node leave it out before it submits: the
    ledger pays its owner on chain."""
    telecom, bank_a, bank_b = consortium.telecom, consortium.bank_a, consortium.bank_b
    own = consortium.dataset(telecom)
    data_a = consortium.dataset(bank_a, rows=100)
    data_b = consortium.dataset(bank_b, rows=300)
    inputs = [(own, telecom.org_id), (data_a, bank_a.org_id), (data_b, bank_b.org_id)]
    spec = (
        _spec(telecom.org_id, [(data_b, telecom.org_id), (data_a, bank_a.org_id)])
        if mislabelled
        else _spec(telecom.org_id, inputs, "joint-stats")
    )
    held = {"org": bank_a.org_id, "fee": fee, "units": 100}
    charges = submission_charges(consortium.admin.data, spec)
    assert (price_violation(charges, _terms(), **held) is None) is (fee >= 4_000)

    grants = [
        ZERO32,
        *(
            consortium.grant(data, member, telecom)
            for data, member in [(data_a, bank_a), (data_b, bank_b)]
        ),
    ]
    members = [telecom, bank_a, bank_b]
    task_id = submit_priced(consortium, telecom, [own, data_a, data_b], grants, members, fee=fee)
    problem = price_violation(bank_a.ledger.tasks.charges_of(task_id), _terms(), **held)
    assert (problem is None) is (fee >= 4_000)
    for member, units in ((telecom, 0), (bank_a, 100), (bank_b, 300)):
        member.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, units)
    telecom.ledger.tasks.settle_task(task_id, ZERO32)
    paid = consortium.admin.metering.balance_of(bank_a.org_id)
    assert (paid >= 100 * UNIT_WEI) is (problem is None), paid


@pytest.mark.parametrize(
    ("protocol", "bucketed", "unit", "refused"),
    [
        ("kkrt", True, "matched_row", True),
        ("kkrt", True, "flat", False),
        ("kkrt", False, "matched_row", False),
        ("difference", False, "matched_row", True),
        ("membership", False, "query_key", True),
        ("difference", False, "call", False),
    ],
)
def test_a_protocol_whose_provider_cannot_count_its_units_is_refused_a_price_per_unit(
    protocol: str, bucketed: bool, unit: str, refused: bool
) -> None:
    """The set operations' providers anchor no units; bucketed KKRT's provider delivers each
    bucket's tags before it knows how many keys it answers. Per call or flat, they may run."""
    inputs = [(secrets.token_bytes(32), 1), (secrets.token_bytes(32), 2)]
    spec = _spec(1, inputs, protocol)
    if bucketed:
        spec = spec.model_copy(update={"buckets": 4})
    terms = _terms(unit).model_copy(update={"protocols": (protocol,)})
    problem = violation(spec, terms, spec.inputs[1], fee=10**18)
    assert (problem is not None and problem.term == "price") is refused, problem
    assert (terms.unenforceable() is not None) is (refused and not bucketed)
