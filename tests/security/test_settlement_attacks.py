"""A malicious requester calling the contracts directly with its own key, against providers that
deliver honestly: settlement it cannot dodge (attacks 6, 7, 8 and 9 of issue 13, a fee below the
floor, a task left to expire unsettled after delivery). The providers here are the contracts'
other members on the session's anvil; tests/security/test_requester_attacks.py plays the same
requester against real nodes."""

from __future__ import annotations

import secrets

import pytest
from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector

from privledger.evm.contracts import FailureReason, Kind, TaskStatus
from privledger.evm.errors import ChainError
from privledger.node.spec import PROTOCOL_IDS
from tests.evm.conftest import ZERO32, Consortium, Member, reverts

pytestmark = pytest.mark.security

FEE = 10**15
PRICE = 1_000  # wei per unit: every dataset here


def _task(
    consortium: Consortium,
    *,
    protocol: str = "ecdh",
    kind: Kind = Kind.PSI,
    fee: int = FEE,
    min_fee: int = 0,
    providers: tuple[Member, ...] | None = None,
) -> tuple[int, list[Member]]:
    """The telecom (the requester) joins its own dataset with one granted dataset per provider."""
    telecom = consortium.telecom
    providers = providers or (consortium.bank_a,)
    own = consortium.dataset(telecom, price=PRICE)
    theirs = [consortium.dataset(provider, price=PRICE) for provider in providers]
    grants = [
        consortium.grant(data, provider, telecom, kinds=kind, min_fee=min_fee)
        for data, provider in zip(theirs, providers, strict=True)
    ]
    task_id = telecom.ledger.tasks.submit_task(
        spec_hash=secrets.token_bytes(32),
        kind=kind,
        protocol=PROTOCOL_IDS[protocol],
        inputs=[own, *theirs],
        grant_ids=[ZERO32, *grants],
        participants=[telecom.org_id, *(provider.org_id for provider in providers)],
        deadline=consortium.now() + 600,
        fee=fee,
    )
    return task_id, list(providers)


def _anchor(member: Member, task_id: int, units: int) -> None:
    member.ledger.tasks.anchor_result(
        task_id, secrets.token_bytes(32), secrets.token_bytes(32), units
    )


def test_6_the_requester_cannot_name_the_payees(consortium: Consortium) -> None:
    """Attack 6: ``settleTask`` accepted ``payees=[requester]`` from a requester owning an input."""
    telecom = consortium.telecom
    task_id, (bank_a,) = _task(consortium)
    _anchor(bank_a, task_id, 40)
    _anchor(telecom, task_id, 4_000)  # the requester's own units count for nothing
    tasks = telecom.ledger.tasks
    old_settle = function_signature_to_4byte_selector(
        "settleTask(uint256,uint256[],uint16[],bytes32)"
    )
    call = old_settle + encode(
        ["uint256", "uint256[]", "uint16[]", "bytes32"],
        [task_id, [telecom.org_id], [10_000], ZERO32],
    )
    with pytest.raises(ChainError):  # there is no payee list to hand over any more
        tasks.client.transact_data(tasks.address, call)
    tasks.settle_task(task_id, ZERO32)
    metering = consortium.admin.metering
    assert metering.balance_of(bank_a.org_id) == FEE
    assert metering.balance_of(telecom.org_id) == 0


def test_7_the_requester_cannot_fail_a_delivered_task(consortium: Consortium) -> None:
    """Attack 7: after the protocol had given it the result, the requester called ``failTask``
    and got the whole fee back."""
    telecom = consortium.telecom
    task_id, (bank_a,) = _task(consortium)
    telecom.ledger.tasks.start_task(task_id)
    _anchor(bank_a, task_id, 25)
    for reason in (FailureReason.PROTOCOL_ERROR, FailureReason.PEER_UNREACHABLE):
        with reverts("TaskLedgerDelivered"):
            telecom.ledger.tasks.fail_task(task_id, reason)
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.RUNNING
    assert telecom.ledger.metering.escrow_of(task_id) == FEE


def test_8_a_fee_of_zero_is_refused_under_a_priced_grant(consortium: Consortium) -> None:
    """Attack 8: no provider checked the fee against its price: a fee of 0 was accepted."""
    with reverts("TaskLedgerFeeBelowFloor"):
        _task(consortium, fee=0, min_fee=10**12)
    assert consortium.admin.metering.balance_of(consortium.telecom.org_id) == 0


def test_a_fee_below_the_terms_floor_is_refused(consortium: Consortium) -> None:
    """The fee must reach the sum of the floors of every grant the task uses."""
    providers = (consortium.bank_a, consortium.bank_b)
    with reverts("TaskLedgerFeeBelowFloor"):
        _task(consortium, fee=2 * 10**12 - 1, min_fee=10**12, providers=providers)
    task_id, _ = _task(consortium, fee=2 * 10**12, min_fee=10**12, providers=providers)
    assert consortium.admin.tasks.get_task(task_id).status is TaskStatus.AUTHORISED


def test_a_task_that_expires_unsettled_after_delivery_pays_the_providers(
    consortium: Consortium,
) -> None:
    """The requester takes its result and never anchors nor settles; after the deadline anyone
    closes the task, and the fee goes to the providers, not back to the requester."""
    telecom = consortium.telecom
    task_id, providers = _task(consortium, providers=(consortium.bank_a, consortium.bank_b))
    _anchor(providers[0], task_id, 10)
    _anchor(providers[1], task_id, 30)
    with reverts("TaskLedgerNotExpirable"):
        providers[0].ledger.tasks.expire_task(task_id)
    consortium.travel(601)
    providers[0].ledger.tasks.expire_task(task_id)  # a provider triggers settlement itself
    assert consortium.admin.tasks.get_task(task_id).status is TaskStatus.SETTLED
    metering = consortium.admin.metering
    assert metering.balance_of(providers[0].org_id) == FEE // 4
    assert metering.balance_of(providers[1].org_id) == FEE - FEE // 4
    assert metering.balance_of(telecom.org_id) == 0


def test_9_the_requester_is_never_paid_for_its_own_inputs(consortium: Consortium) -> None:
    """Attack 9: vertical FL paid Shapley shares to the requester itself (94% of one fee) while
    PSI never did. The rule now, for every protocol: the providers are paid by the usage they
    anchored, the requester nothing for its own inputs."""
    telecom = consortium.telecom
    for protocol, kind in (
        ("vertical-lr", Kind.FL),
        ("ecdh", Kind.PSI),
        ("joint-stats", Kind.STATS),
    ):
        before = consortium.admin.metering.balance_of(telecom.org_id)
        task_id, (bank_a,) = _task(consortium, protocol=protocol, kind=kind)
        _anchor(telecom, task_id, 10**6)  # whatever it claims
        _anchor(bank_a, task_id, 1)
        telecom.ledger.tasks.settle_task(task_id, ZERO32)
        assert consortium.admin.metering.balance_of(telecom.org_id) == before, protocol
        allocated = telecom.ledger.metering.contract.events.FeeAllocated
        assert not list(
            allocated().get_logs(argument_filters={"payeeOrg": telecom.org_id}, from_block=0)
        )
