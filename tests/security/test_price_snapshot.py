"""A requester with an accomplice provider against an honest provider's price (F6): the honest
provider holds the fee to its price before its output leaves, counting the accomplice at the
most it can weigh; the accomplice then tries to weigh more -- by raising its dataset's unit
price, or by anchoring more units than its dataset has rows -- to dilute the honest provider's
share of the fee. The telecom is the requester and bank-b its accomplice, each calling the
contracts with its own key; bank-a provides honestly, its check being the node's own
(:func:`privledger.node.pricing.price_violation`, on the charges the ledger fixed at
submission)."""

from __future__ import annotations

import secrets

import pytest

from privledger.evm.contracts import Kind
from privledger.node.pricing import price_violation
from privledger.node.settlement import settlement_record
from privledger.node.spec import PROTOCOL_IDS, SpecInput, parse_spec
from privledger.node.terms import GrantTerms, Price, TermViolation
from tests.evm.conftest import ZERO32, Consortium, Member

pytestmark = pytest.mark.security

UNIT_WEI = 10  # every dataset's unit price, and bank-a's price per matched row
ROWS_A, ROWS_B = 100, 300
FEE = 4_000  # bank-a's least share, bank-b weighing all its rows: 100 x 10 wei, its price


def _anchor(member: Member, task_id: int, units: int) -> None:
    member.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, units)


def _task(consortium: Consortium, price_b: int = UNIT_WEI) -> tuple[int, bytes]:
    """The telecom's joint statistics over its own dataset, bank-a's and bank-b's (at
    ``price_b`` a row), at the fee bank-a's price asks for: the task's id and bank-b's input."""
    telecom, bank_a, bank_b = consortium.telecom, consortium.bank_a, consortium.bank_b
    own = consortium.dataset(telecom, price=UNIT_WEI)
    data_a = consortium.dataset(bank_a, price=UNIT_WEI, rows=ROWS_A)
    data_b = consortium.dataset(bank_b, price=price_b, rows=ROWS_B)
    grants = [
        consortium.grant(data, member, telecom, kinds=Kind.STATS)
        for data, member in ((data_a, bank_a), (data_b, bank_b))
    ]
    task_id = telecom.ledger.tasks.submit_task(
        spec_hash=secrets.token_bytes(32),
        kind=Kind.STATS,
        protocol=PROTOCOL_IDS["joint-stats"],
        inputs=[own, data_a, data_b],
        grant_ids=[ZERO32, *grants],
        participants=[telecom.org_id, bank_a.org_id, bank_b.org_id],
        deadline=consortium.now() + 600,
        fee=FEE,
    )
    return task_id, data_b


def _check_of_bank_a(consortium: Consortium, task_id: int) -> TermViolation | None:
    """bank-a's check before its output leaves, as its worker makes it."""
    terms = GrantTerms.model_validate(
        {
            "protocols": ["joint-stats"],
            "columns": {"phone": ["aggregate"]},
            "price": Price(unit="matched_row", wei=UNIT_WEI),
        }
    )
    bank_a = consortium.bank_a
    charges = bank_a.ledger.tasks.charges_of(task_id)
    return price_violation(charges, terms, org=bank_a.org_id, fee=FEE, units=ROWS_A)


def _record_share_of_bank_a(consortium: Consortium, task_id: int) -> int:
    """bank-a's share (basis points) in the provenance record a node writes for the settled
    task, which must weigh the inputs as the ledger did."""
    task = consortium.admin.tasks.get_task(task_id)
    items = [
        SpecInput(dataset="0x" + dataset.hex(), org=org, column="amount")
        for dataset, org in zip(task.inputs, task.participants, strict=True)
    ]
    # the record reads inputs, owners and participants from the spec: a set operation has this
    # task's three (a joint-stats spec would add the dealer, whom this task, made on chain, lacks)
    body = {"protocol": "intersection3", "requester": task.requester_org, "inputs": items}
    record = settlement_record(consortium.admin, parse_spec(body), task_id)
    return record.bps[record.payees.index(consortium.bank_a.org_id)]


def _checked_task(consortium: Consortium) -> tuple[int, bytes]:
    """:func:`_task`, which bank-a's check passes: it lets its output go."""
    task_id, data_b = _task(consortium)
    problem = _check_of_bank_a(consortium, task_id)
    assert problem is None, problem
    return task_id, data_b


def _settled_pay_of_bank_a(consortium: Consortium, task_id: int, units_b: int) -> int:
    _anchor(consortium.bank_a, task_id, ROWS_A)
    _anchor(consortium.bank_b, task_id, units_b)
    _anchor(consortium.telecom, task_id, 0)
    consortium.telecom.ledger.tasks.settle_task(task_id, ZERO32)
    return consortium.admin.metering.balance_of(consortium.bank_a.org_id)


def test_an_accomplice_raising_its_unit_price_after_the_check_does_not_dilute_the_provider(
    consortium: Consortium,
) -> None:
    """Attack (a): once bank-a's check passed, bank-b raised its unit price a thousandfold and
    bank-a was paid 1 wei of its 1,000 wei price."""
    task_id, data_b = _checked_task(consortium)
    consortium.bank_b.ledger.data.set_unit_price(data_b, 1_000 * UNIT_WEI)
    charges = consortium.admin.tasks.charges_of(task_id)
    assert [charge.unit_price for charge in charges] == [UNIT_WEI, UNIT_WEI]  # as submitted
    paid = _settled_pay_of_bank_a(consortium, task_id, ROWS_B)
    assert paid >= ROWS_A * UNIT_WEI, paid
    assert _record_share_of_bank_a(consortium, task_id) == 10_000 * paid // FEE  # as the ledger


def test_an_accomplice_anchoring_more_units_than_its_rows_does_not_dilute_the_provider(
    consortium: Consortium,
) -> None:
    """Attack (b): bank-b, with 300 rows, anchored 300,000 units and bank-a was paid 1 wei of
    its 1,000 wei price."""
    task_id, _ = _checked_task(consortium)
    paid = _settled_pay_of_bank_a(consortium, task_id, 1_000 * ROWS_B)
    assert paid >= ROWS_A * UNIT_WEI, paid
    assert _record_share_of_bank_a(consortium, task_id) == 10_000 * paid // FEE  # as the ledger
    tasks = consortium.admin.tasks
    assert tasks.units_of(task_id, consortium.bank_b.org_id) == 1_000 * ROWS_B  # as anchored
    assert [charge.max_units for charge in tasks.charges_of(task_id)] == [ROWS_A, ROWS_B]


def test_an_accomplice_lowering_its_unit_price_before_the_check_does_not_pass_it(
    consortium: Consortium,
) -> None:
    """The other way round: bank-b's dataset was priced a thousandfold when the task was
    submitted and lowered afterwards; a check on the prices of the moment would pass the fee,
    which the ledger, weighing bank-b at the price it fixed, splits to give bank-a 1 wei. bank-a
    checks the price the ledger fixed and refuses."""
    task_id, data_b = _task(consortium, price_b=1_000 * UNIT_WEI)
    consortium.bank_b.ledger.data.set_unit_price(data_b, UNIT_WEI)
    problem = _check_of_bank_a(consortium, task_id)
    assert problem is not None and problem.term == "price", problem
    assert _settled_pay_of_bank_a(consortium, task_id, ROWS_B) < ROWS_A * UNIT_WEI
