"""A task completes without the participants that dropped out, on the contracts alone: a party
that anchored reports the others absent, they keep {ABSENCE_GRACE} to anchor, and the settlement
pays only the providers that anchored (tests/e2e/test_horizontal_dropout.py plays it between
node processes)."""

from __future__ import annotations

import secrets

from privledger.evm.contracts import FailureReason, TaskStatus
from privledger.node.absence import AbsenceWatch
from privledger.node.worker import Worker

from .conftest import ZERO32, Consortium, Member, reverts
from .test_settlement_rules import FEE, submit_priced, three_party_task
from .test_worker_reconcile import worker  # noqa: F401  (the fixture)


def _anchor(member: Member, task_id: int, units: int) -> None:
    member.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, units)


def test_a_task_completes_without_a_party_that_stayed_away_and_pays_only_who_delivered(
    consortium: Consortium,
) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    task_id = three_party_task(consortium)
    with reverts("TaskLedgerNotAnchored"):  # only a party that delivered may report others
        bank_a.ledger.tasks.report_absence(task_id)
    _anchor(telecom, task_id, 0)
    _anchor(bank_a, task_id, 10)
    with reverts("TaskLedgerNotAnchored"):  # the absent party cannot report itself present
        bank_b.ledger.tasks.report_absence(task_id)
    receipt = bank_a.ledger.tasks.report_absence(task_id)
    reported = bank_a.ledger.tasks.events(receipt, "AbsenceReported")
    assert [(e["args"]["reporter"], e["args"]["absentSeats"]) for e in reported] == [
        (bank_a.org_id, 0b100)  # bank-b, the third participant
    ]
    seats, reported_at = telecom.ledger.tasks.absence_of(task_id)
    assert seats == 0b100 and reported_at > 0
    with reverts("TaskLedgerAbsenceGrace"):  # bank-b keeps the grace to anchor
        telecom.ledger.tasks.report_absence(task_id)
    consortium.travel(telecom.ledger.tasks.absence_grace())
    receipt = telecom.ledger.tasks.report_absence(task_id)
    absent = telecom.ledger.tasks.events(receipt, "ParticipantAbsent")
    assert [event["args"]["org"] for event in absent] == [bank_b.org_id]
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.COMPLETED
    with reverts("TaskLedgerInvalidStatus"):  # too late to anchor: the task completed
        _anchor(bank_b, task_id, 30)
    telecom.ledger.tasks.settle_task(task_id, ZERO32)
    metering = consortium.admin.metering
    assert metering.balance_of(bank_a.org_id) == FEE
    assert metering.balance_of(bank_b.org_id) == 0
    assert metering.balance_of(telecom.org_id) == 0


def test_a_live_party_keeps_its_pay_by_anchoring_within_the_grace(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    task_id = three_party_task(consortium)
    _anchor(telecom, task_id, 0)
    telecom.ledger.tasks.report_absence(task_id)  # bank-a and bank-b both reported
    _anchor(bank_a, task_id, 10)  # bank-a was only slow
    consortium.travel(telecom.ledger.tasks.absence_grace())
    # the report no longer holds (bank-a anchored): reporting again starts a new grace
    receipt = telecom.ledger.tasks.report_absence(task_id)
    assert telecom.ledger.tasks.events(receipt, "AbsenceReported")[0]["args"]["absentSeats"] == 4
    with reverts("TaskLedgerAbsenceGrace"):
        telecom.ledger.tasks.report_absence(task_id)
    _anchor(bank_b, task_id, 30)  # and bank-b too: the task completes as usual
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.COMPLETED
    bank_b.ledger.tasks.settle_task(task_id, ZERO32)
    metering = consortium.admin.metering
    assert metering.balance_of(bank_a.org_id) == FEE // 4
    assert metering.balance_of(bank_b.org_id) == FEE - FEE // 4


def test_a_task_without_any_provider_refunds_its_requester(consortium: Consortium) -> None:
    bank_a, telecom = consortium.bank_a, consortium.telecom
    task_id = three_party_task(consortium)
    _anchor(telecom, task_id, 0)  # the requester alone delivered
    telecom.ledger.tasks.report_absence(task_id)
    consortium.travel(telecom.ledger.tasks.absence_grace())
    telecom.ledger.tasks.report_absence(task_id)
    telecom.ledger.tasks.settle_task(task_id, ZERO32)
    metering = consortium.admin.metering
    assert metering.balance_of(telecom.org_id) == FEE
    assert metering.balance_of(bank_a.org_id) == 0


def test_no_absence_after_the_deadline(consortium: Consortium) -> None:
    telecom = consortium.telecom
    task_id = three_party_task(consortium)
    _anchor(telecom, task_id, 0)
    consortium.travel(601)
    with reverts("TaskLedgerDeadlinePassed"):
        telecom.ledger.tasks.report_absence(task_id)


def test_a_party_that_anchored_closes_the_task_left_open_at_its_deadline(
    consortium: Consortium,
) -> None:
    """The node's watch (``privledger.node.absence``): bank-a anchored; the others never do, and
    the deadline comes before the grace of its report ends. Bank-a's watch then closes the task
    itself: one that every provider anchored is settled to them, so the fee does not wait in
    escrow for someone to expire the task by hand."""
    bank_a, telecom = consortium.bank_a, consortium.telecom
    data_a = consortium.dataset(bank_a)
    grant_a = consortium.grant(data_a, bank_a, telecom)
    task_id = submit_priced(  # a deadline nearer than the absence grace
        consortium, telecom, [data_a], [grant_a], [telecom, bank_a], deadline_s=100
    )
    _anchor(bank_a, task_id, 10)
    watch = AbsenceWatch(bank_a.ledger.tasks, wait_s=0)
    watch.watch(task_id)
    watch.check(task_id)  # reports the requester absent
    assert telecom.ledger.tasks.absence_of(task_id)[0] != 0
    watch.check(task_id)  # within the grace and before the deadline: nothing to do yet
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.AUTHORISED  # open
    consortium.travel(101)
    watch.check(task_id)
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.SETTLED
    assert consortium.admin.metering.balance_of(bank_a.org_id) == FEE
    assert watch.due() == [] and watch._due == {}  # forgotten: nothing more to look at


def _refused_failure(consortium: Consortium, requester: Worker) -> int:
    """A task whose requester, the telecom, failed it after bank-a recorded its delivery."""
    bank_a, telecom = consortium.bank_a, consortium.telecom
    data_a = consortium.dataset(bank_a)
    grant_a = consortium.grant(data_a, bank_a, telecom)
    task_id = submit_priced(consortium, telecom, [data_a], [grant_a], [telecom, bank_a])
    bank_a.ledger.tasks.record_delivery(task_id)
    requester._fail(task_id, FailureReason.PEER_UNREACHABLE, "bank-a's node stopped answering")
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.AUTHORISED  # refused
    return task_id


def test_a_requester_whose_failure_is_refused_has_the_task_closed_at_its_deadline(
    consortium: Consortium,
    worker: Worker,  # noqa: F811  (the fixture)
) -> None:
    """Bank-a recorded the delivery of the telecom's output, then neither anchored nor answered.
    The telecom's node cannot fail the task (the ledger refuses once a delivery is recorded), and
    nobody anchored, so no absence watch would ever close it: its node closes it at the deadline
    itself, and the fee goes to bank-a, which may have given the telecom its output."""
    bank_a, telecom = consortium.bank_a, consortium.telecom
    task_id = _refused_failure(consortium, worker)
    watch = worker._absences
    assert watch.due() == [task_id]
    watch.check(task_id)  # long before the deadline: nothing to report, look again later
    assert telecom.ledger.tasks.absence_of(task_id)[0] == 0
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.AUTHORISED
    assert watch.due() == [] and task_id in watch._due
    consortium.travel(601)
    watch.check(task_id)
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.SETTLED
    assert consortium.admin.metering.balance_of(bank_a.org_id) == FEE
    assert consortium.admin.metering.balance_of(telecom.org_id) == 0
    assert watch._due == {}


def test_a_refused_failure_is_still_closed_at_its_deadline_after_a_restart(
    consortium: Consortium,
    worker: Worker,  # noqa: F811  (the fixture)
) -> None:
    """The telecom's node restarts after the ledger refused its failure: it watches the task
    for its deadline again (before, only its watch in memory did, and the restart dropped it),
    and closes it then."""
    task_id = _refused_failure(consortium, worker)
    restarted = Worker(worker.node, max_parallel=1)
    restarted._recover()
    watch = restarted._absences
    assert watch.due() == [task_id]
    consortium.travel(601)
    watch.check(task_id)
    assert consortium.admin.tasks.get_task(task_id).status is TaskStatus.SETTLED
    assert consortium.admin.metering.balance_of(consortium.bank_a.org_id) == FEE
    assert watch._due == {}


def test_a_provider_that_recorded_a_delivery_is_paid_when_reported_absent(
    consortium: Consortium,
) -> None:
    """A PSI with output to both: bank-a records its delivery and sends what gives the telecom
    the intersection, then waits for the telecom's matched positions, which it withholds. The
    telecom anchors at once, reports bank-a absent and completes the task without it after the
    grace, while bank-a still waits. With bank-a absent the fee used to go back to the telecom,
    output in hand; a provider that recorded a delivery stays a payee, and is paid the fee."""
    bank_a, telecom = consortium.bank_a, consortium.telecom
    data_a = consortium.dataset(bank_a)
    grant_a = consortium.grant(data_a, bank_a, telecom)
    task_id = submit_priced(consortium, telecom, [data_a], [grant_a], [telecom, bank_a])
    bank_a.ledger.tasks.record_delivery(task_id)
    _anchor(telecom, task_id, 0)
    telecom.ledger.tasks.report_absence(task_id)
    consortium.travel(telecom.ledger.tasks.absence_grace())
    receipt = telecom.ledger.tasks.report_absence(task_id)
    absent = telecom.ledger.tasks.events(receipt, "ParticipantAbsent")
    assert [event["args"]["org"] for event in absent] == [bank_a.org_id]
    with reverts("TaskLedgerInvalidStatus"):  # completed: bank-a's late anchor is refused
        _anchor(bank_a, task_id, 0)
    telecom.ledger.tasks.settle_task(task_id, ZERO32)
    metering = consortium.admin.metering
    assert metering.balance_of(bank_a.org_id) == FEE
    assert metering.balance_of(telecom.org_id) == 0
