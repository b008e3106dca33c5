"""Settlement a requester cannot dodge, on the contracts alone: fee floors, the dealer a grant
allows, and no failure once the providers delivered (tests/security plays the attacks end to end).
"""

from __future__ import annotations

import secrets

from privledger.evm.contracts import FailureReason, Kind, TaskStatus
from privledger.node.spec import PROTOCOL_IDS

from .conftest import ZERO32, Consortium, Member, reverts

FEE = 10**15


def submit_priced(
    consortium: Consortium,
    requester: Member,
    inputs: list[bytes],
    grants: list[bytes],
    participants: list[Member],
    *,
    fee: int = FEE,
    protocol: str = "ecdh",
    kind: Kind = Kind.PSI,
    deadline_s: int = 600,
) -> int:
    return requester.ledger.tasks.submit_task(
        spec_hash=secrets.token_bytes(32),
        kind=kind,
        protocol=PROTOCOL_IDS[protocol],
        inputs=inputs,
        grant_ids=grants,
        participants=[member.org_id for member in participants],
        deadline=consortium.now() + deadline_s,
        fee=fee,
    )


def test_the_fee_reaches_the_sum_of_the_grants_floors(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    data_a, data_b = consortium.dataset(bank_a), consortium.dataset(bank_b)
    grant_a = consortium.grant(data_a, bank_a, telecom, min_fee=600)
    grant_b = consortium.grant(data_b, bank_b, telecom, min_fee=400)
    members = [telecom, bank_a, bank_b]
    with reverts("TaskLedgerFeeBelowFloor"):
        submit_priced(consortium, telecom, [data_a, data_b], [grant_a, grant_b], members, fee=999)
    submit_priced(consortium, telecom, [data_a, data_b], [grant_a, grant_b], members, fee=1_000)
    assert consortium.admin.grants.get_grant(grant_a).min_fee == 600


def test_only_a_published_dealer_the_grant_allows_may_deal(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    own, theirs = consortium.dataset(telecom), consortium.dataset(bank_a)
    grant = consortium.grant(theirs, bank_a, telecom, kinds=Kind.STATS, dealer=bank_b.org_id)
    insurer_free = consortium.grant(theirs, bank_a, telecom, kinds=Kind.STATS, dealer=0)
    args = ([own, theirs], [telecom, bank_a, bank_b])
    with reverts("TaskLedgerDealerNotPublished"):  # bank-b never consented to deal
        submit_priced(
            consortium,
            telecom,
            args[0],
            [ZERO32, grant],
            args[1],
            protocol="joint-stats",
            kind=Kind.STATS,
        )
    with reverts("OrgRegistryUnauthorized"):  # only its own org admin publishes its service
        telecom.ledger.orgs.set_dealer_service(bank_b.org_id, True)
    bank_b.ledger.orgs.set_dealer_service(bank_b.org_id, True)
    assert consortium.admin.orgs.is_dealer(bank_b.org_id)
    with reverts("GrantRegistryDealerNotAllowed"):  # this grant allows no dealer at all
        submit_priced(
            consortium,
            telecom,
            args[0],
            [ZERO32, insurer_free],
            args[1],
            protocol="joint-stats",
            kind=Kind.STATS,
        )
    task_id = submit_priced(
        consortium,
        telecom,
        args[0],
        [ZERO32, grant],
        args[1],
        protocol="joint-stats",
        kind=Kind.STATS,
    )
    assert consortium.admin.tasks.get_task(task_id).protocol == PROTOCOL_IDS["joint-stats"]


def three_party_task(consortium: Consortium) -> int:
    """telecom requests with an input of its own; bank-a and bank-b provide one each."""
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    own = consortium.dataset(telecom)
    data_a, data_b = consortium.dataset(bank_a), consortium.dataset(bank_b)
    grants = [
        ZERO32,
        consortium.grant(data_a, bank_a, telecom),
        consortium.grant(data_b, bank_b, telecom),
    ]
    return submit_priced(
        consortium, telecom, [own, data_a, data_b], grants, [telecom, bank_a, bank_b]
    )


def test_no_failure_once_the_providers_delivered(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    task_id = three_party_task(consortium)
    bank_a.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, 10)
    with reverts("TaskLedgerDelivered"):  # one provider delivered: not the requester
        telecom.ledger.tasks.fail_task(task_id, FailureReason.PROTOCOL_ERROR)
    bank_b.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, 30)
    with reverts("TaskLedgerDelivered"):  # every provider delivered: nobody
        bank_b.ledger.tasks.fail_task(task_id, FailureReason.PROTOCOL_ERROR)
    consortium.travel(601)  # the requester never anchors
    consortium.admin.tasks.expire_task(task_id)
    assert consortium.admin.tasks.get_task(task_id).status is TaskStatus.SETTLED
    metering = consortium.admin.metering
    assert metering.balance_of(bank_a.org_id) == FEE // 4
    assert metering.balance_of(bank_b.org_id) == FEE - FEE // 4
    assert metering.balance_of(telecom.org_id) == 0


def test_a_delivery_recorded_before_the_anchor_binds_the_requester(consortium: Consortium) -> None:
    """A provider about to hand the requester its output before it can anchor (an intersection
    revealed to both, a bucketed PSI) records the delivery: from then on nobody can fail the
    task -- not the requester, nor another participant that the requester's abort ended -- and
    after the deadline it is settled to the providers that anchored."""
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    task_id = three_party_task(consortium)
    with reverts("TaskLedgerNotProvider"):  # the requester delivers nothing it is paid for
        telecom.ledger.tasks.record_delivery(task_id)
    data_a = consortium.dataset(bank_a)
    grant_a = consortium.grant(data_a, bank_a, telecom)
    pair = submit_priced(consortium, telecom, [data_a], [grant_a], [telecom, bank_a])
    with reverts("TaskLedgerUnauthorized"):  # nor does an organisation outside the task
        bank_b.ledger.tasks.record_delivery(pair)
    assert consortium.admin.tasks.deliveries_of(task_id) == 0
    receipt = bank_b.ledger.tasks.record_delivery(task_id)
    (event,) = bank_b.ledger.tasks.events(receipt, "DeliveryRecorded")
    assert (event["args"]["taskId"], event["args"]["org"]) == (task_id, bank_b.org_id)
    again = bank_b.ledger.tasks.record_delivery(task_id)  # a retried call does nothing
    assert bank_b.ledger.tasks.events(again, "DeliveryRecorded") == ()
    assert consortium.admin.tasks.deliveries_of(task_id) == 0b100  # bank-b's seat
    for member in (telecom, bank_a, bank_b):  # the requester, a provider, the one delivering
        with reverts("TaskLedgerDelivered"):
            member.ledger.tasks.fail_task(task_id, FailureReason.PEER_UNREACHABLE)
    bank_b.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, 30)  # told nothing
    consortium.travel(601)  # bank-a never anchors, nor does the requester
    consortium.admin.tasks.expire_task(task_id)
    assert consortium.admin.tasks.get_task(task_id).status is TaskStatus.SETTLED
    metering = consortium.admin.metering
    assert metering.balance_of(bank_b.org_id) == FEE
    assert metering.balance_of(bank_a.org_id) == metering.balance_of(telecom.org_id) == 0
    with reverts("TaskLedgerInvalidStatus"):  # nothing to deliver for a closed task
        bank_a.ledger.tasks.record_delivery(task_id)


def test_a_dealer_cannot_fail_a_task_once_a_provider_delivered(consortium: Consortium) -> None:
    """The dealer of an MPC task is honest and ends when the requester aborts: a failure of its
    after a delivery would refund the requester, which may hold the provider's output."""
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    theirs = consortium.dataset(bank_a)
    grant = consortium.grant(theirs, bank_a, telecom, kinds=Kind.STATS, dealer=bank_b.org_id)
    bank_b.ledger.orgs.set_dealer_service(bank_b.org_id, True)
    task_id = submit_priced(
        consortium,
        telecom,
        [consortium.dataset(telecom), theirs],
        [ZERO32, grant],
        [telecom, bank_a, bank_b],
        protocol="joint-stats",
        kind=Kind.STATS,
    )
    bank_a.ledger.tasks.record_delivery(task_id)
    with reverts("TaskLedgerDelivered"):
        bank_b.ledger.tasks.fail_task(task_id, FailureReason.PEER_UNREACHABLE)
    consortium.travel(601)  # bank-a never anchored: paid all the same, for what it delivered
    consortium.admin.tasks.expire_task(task_id)
    assert consortium.admin.tasks.get_task(task_id).status is TaskStatus.SETTLED
    assert consortium.admin.metering.balance_of(bank_a.org_id) == FEE
    assert consortium.admin.metering.balance_of(bank_b.org_id) == 0
    assert consortium.admin.metering.balance_of(telecom.org_id) == 0


def test_no_delivery_is_recorded_after_the_deadline(consortium: Consortium) -> None:
    task_id = three_party_task(consortium)
    consortium.travel(601)
    with reverts("TaskLedgerDeadlinePassed"):
        consortium.bank_a.ledger.tasks.record_delivery(task_id)


def test_once_a_provider_anchored_no_participant_can_fail_the_task(consortium: Consortium) -> None:
    """A provider anchors before its last messages leave, so the requester may hold its output:
    neither the requester nor another provider -- bank-b here, which the requester may control
    -- can then fail the task and refund it. Bank-a reports the parties that stay away and is
    paid the whole fee."""
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    task_id = three_party_task(consortium)
    bank_a.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, 10)
    for member in (bank_b, telecom):
        with reverts("TaskLedgerDelivered"):
            member.ledger.tasks.fail_task(task_id, FailureReason.PEER_UNREACHABLE)
    bank_a.ledger.tasks.report_absence(task_id)
    consortium.travel(bank_a.ledger.tasks.absence_grace())
    bank_a.ledger.tasks.report_absence(task_id)  # completes without bank-b and the telecom
    bank_a.ledger.tasks.settle_task(task_id, ZERO32)
    metering = consortium.admin.metering
    assert metering.balance_of(bank_a.org_id) == FEE
    assert metering.balance_of(telecom.org_id) == 0 and metering.balance_of(bank_b.org_id) == 0


def test_a_task_one_provider_anchored_settles_to_it_at_its_deadline(
    consortium: Consortium,
) -> None:
    """Bank-a anchored, bank-b never did and nobody reported it absent: at the deadline the
    task is settled to bank-a, not refunded to a requester that may hold bank-a's output."""
    bank_a, telecom = consortium.bank_a, consortium.telecom
    task_id = three_party_task(consortium)
    bank_a.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, 10)
    consortium.travel(601)
    consortium.admin.tasks.expire_task(task_id)
    assert consortium.admin.tasks.get_task(task_id).status is TaskStatus.SETTLED
    metering = consortium.admin.metering
    assert metering.balance_of(bank_a.org_id) == FEE
    assert metering.balance_of(telecom.org_id) == 0


def test_an_owner_that_is_also_a_parents_owner_is_paid_once(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    data_a = consortium.dataset(bank_a)
    derived = consortium.dataset(bank_b, parents=(consortium.dataset(bank_a),), upstream_bps=5_000)
    grants = [consortium.grant(data_a, bank_a, telecom), consortium.grant(derived, bank_b, telecom)]
    task_id = submit_priced(
        consortium, telecom, [data_a, derived], grants, [telecom, bank_a, bank_b]
    )
    for member, units in ((telecom, 0), (bank_a, 10), (bank_b, 20)):
        member.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, units)
    receipt = telecom.ledger.tasks.settle_task(task_id, ZERO32)
    paid = telecom.ledger.metering.events(receipt, "FeeAllocated")
    # bank-a: its own 10 units and half of bank-b's 20 as the parent's owner, in one payment
    assert [(event["args"]["payeeOrg"], event["args"]["amount"]) for event in paid] == [
        (bank_a.org_id, FEE * 20 // 30),
        (bank_b.org_id, FEE - FEE * 20 // 30),
    ]
