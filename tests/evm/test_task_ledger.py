from __future__ import annotations

import secrets

from web3 import Web3
from web3.types import TxReceipt

from privledger.evm.contracts import ApprovalStatus, FailureReason, Kind, TaskStatus
from privledger.node.spec import PROTOCOL_IDS

from .conftest import PROTOCOL_OF, ZERO32, Consortium, Member, onboard, reverts

FEE = 10**18 + 7  # an odd fee, so rounding is visible


def submit(
    consortium: Consortium,
    requester: Member,
    inputs: list[bytes],
    grants: list[bytes],
    participants: list[Member],
    *,
    fee: int = FEE,
    kind: Kind = Kind.PSI,
    deadline_s: int = 3_600,
) -> int:
    return requester.ledger.tasks.submit_task(
        spec_hash=secrets.token_bytes(32),
        kind=kind,
        protocol=PROTOCOL_OF.get(kind, 1),
        inputs=inputs,
        grant_ids=grants,
        participants=[member.org_id for member in participants],
        deadline=consortium.now() + deadline_s,
        fee=fee,
    )


def gas_cost(receipt: TxReceipt) -> int:
    """What the sender paid for a mined transaction, in wei."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def test_full_lifecycle_settles_to_the_wei(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    w3 = consortium.w3
    mine = consortium.dataset(telecom)
    theirs_a = consortium.dataset(bank_a, rows=1_000)  # an input weighs at most its rows
    theirs_b = consortium.dataset(bank_b, rows=1_000)
    grant_a = consortium.grant(theirs_a, bank_a, telecom)
    grant_b = consortium.grant(theirs_b, bank_b, telecom)
    payer_before = w3.eth.get_balance(telecom.address)
    ledger_before = w3.eth.get_balance(telecom.ledger.tasks.address)

    task_id = submit(
        consortium,
        telecom,
        [mine, theirs_a, theirs_b],
        [ZERO32, grant_a, grant_b],
        [telecom, bank_a, bank_b],
    )
    (submitted,) = telecom.ledger.tasks.contract.events.TaskSubmitted().get_logs(
        argument_filters={"taskId": task_id}, from_block=0
    )
    payer_paid = FEE + gas_cost(w3.eth.get_transaction_receipt(submitted["transactionHash"]))
    task = telecom.ledger.tasks.get_task(task_id)
    assert task.status is TaskStatus.AUTHORISED
    assert task.fee == FEE and task.requester_org == telecom.org_id
    assert task.requester == telecom.address
    assert task.participants == (telecom.org_id, bank_a.org_id, bank_b.org_id)
    assert task.inputs == (mine, theirs_a, theirs_b)
    assert telecom.ledger.metering.escrow_of(task_id) == FEE
    assert w3.eth.get_balance(telecom.address) == payer_before - payer_paid
    assert w3.eth.get_balance(telecom.ledger.tasks.address) == ledger_before + FEE
    assert telecom.ledger.grants.get_grant(grant_a).used == 1
    assert telecom.ledger.metering.usage_of(theirs_a) == 1
    assert telecom.ledger.metering.usage_of(mine) == 0  # own inputs are not metered

    bank_a.ledger.tasks.start_task(task_id)
    bank_b.ledger.tasks.start_task(task_id)  # a second start is a no-op
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.RUNNING

    digests = {member.org_id: secrets.token_bytes(32) for member in (telecom, bank_a, bank_b)}
    units = {telecom.org_id: 999, bank_a.org_id: 300, bank_b.org_id: 700}  # matched rows
    transcript = secrets.token_bytes(32)
    for member in (telecom, bank_a):
        receipt = member.ledger.tasks.anchor_result(
            task_id, digests[member.org_id], transcript, units[member.org_id]
        )
        payer_paid += gas_cost(receipt) if member is telecom else 0
    with reverts("TaskLedgerAlreadyAnchored"):
        bank_a.ledger.tasks.anchor_result(task_id, digests[bank_a.org_id], transcript)
    with reverts("TaskLedgerInvalidStatus"):  # not completed yet
        telecom.ledger.tasks.settle_task(task_id, ZERO32)
    bank_b.ledger.tasks.anchor_result(task_id, digests[bank_b.org_id], transcript, 700)
    assert telecom.ledger.tasks.units_of(task_id, bank_b.org_id) == 700
    assert telecom.ledger.tasks.units_of(task_id, telecom.org_id) == 0  # not a provider
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.COMPLETED
    tasks = telecom.ledger.tasks
    commitment = Web3.keccak(digests[bank_b.org_id] + transcript)  # abi.encode of two bytes32
    assert tasks.anchor_of(task_id, bank_b.org_id) == commitment
    assert tasks.verify_anchor(task_id, bank_b.org_id, digests[bank_b.org_id], transcript)
    assert not tasks.verify_anchor(task_id, bank_b.org_id, digests[bank_a.org_id], transcript)
    assert not tasks.verify_anchor(task_id, bank_b.org_id, digests[bank_b.org_id], ZERO32)
    anchors = {anchor.org_id: anchor for anchor in tasks.anchors(task_id)}
    assert {org: anchor.result_digest for org, anchor in anchors.items()} == digests
    assert anchors[bank_b.org_id].commitment == commitment
    assert anchors[bank_b.org_id].anchored_at >= anchors[telecom.org_id].anchored_at > 0

    provenance = secrets.token_bytes(32)
    receipt = telecom.ledger.tasks.settle_task(task_id, provenance)
    payer_paid += gas_cost(receipt)
    # the requester paid exactly the fee and the gas of its three transactions (the refused
    # pre-flights above sent nothing); the ledger holds the fee until the payees withdraw it
    assert w3.eth.get_balance(telecom.address) == payer_before - payer_paid
    assert w3.eth.get_balance(telecom.ledger.tasks.address) == ledger_before + FEE

    share_a = FEE * 300 // 1_000  # the anchored units times equal unit prices
    assert telecom.ledger.metering.balance_of(bank_a.org_id) == share_a
    assert telecom.ledger.metering.balance_of(bank_b.org_id) == FEE - share_a  # remainder to last
    assert telecom.ledger.metering.escrow_of(task_id) == 0
    assert telecom.ledger.tasks.settlement_of(task_id) == (provenance, True)
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.SETTLED

    receiver = consortium.admin.client.address
    before = consortium.w3.eth.get_balance(receiver)
    with reverts("MeteringUnauthorized"):
        bank_b.ledger.metering.withdraw(bank_a.org_id, receiver, 1)
    with reverts("MeteringInsufficientBalance"):
        bank_a.ledger.metering.withdraw(bank_a.org_id, receiver, share_a + 1)
    bank_a.ledger.metering.withdraw(bank_a.org_id, receiver, share_a)
    assert w3.eth.get_balance(receiver) == before + share_a
    assert w3.eth.get_balance(telecom.ledger.tasks.address) == ledger_before + FEE - share_a
    assert bank_a.ledger.metering.balance_of(bank_a.org_id) == 0


def test_input_without_grant_waits_for_owner_approval(consortium: Consortium) -> None:
    bank_a, telecom = consortium.bank_a, consortium.telecom
    theirs = consortium.dataset(bank_a)
    task_id = submit(consortium, telecom, [theirs], [ZERO32], [telecom, bank_a])
    task = telecom.ledger.tasks.get_task(task_id)
    assert (task.status, task.pending_approvals) == (TaskStatus.SUBMITTED, 1)
    assert telecom.ledger.grants.approval_of(task_id, theirs) is ApprovalStatus.PENDING
    with reverts("TaskLedgerInvalidStatus"):
        bank_a.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32)
    with reverts("GrantRegistryUnauthorized"):
        telecom.ledger.grants.approve(task_id, theirs)
    bank_a.ledger.grants.approve(task_id, theirs)
    assert telecom.ledger.tasks.get_task(task_id).status is TaskStatus.AUTHORISED
    assert telecom.ledger.grants.approval_of(task_id, theirs) is ApprovalStatus.APPROVED
    with reverts("GrantRegistryNotPending"):
        bank_a.ledger.grants.approve(task_id, theirs)


def test_rejection_fails_the_task_and_refunds(consortium: Consortium) -> None:
    bank_a, telecom = consortium.bank_a, consortium.telecom
    theirs = consortium.dataset(bank_a)
    task_id = submit(consortium, telecom, [theirs], [ZERO32], [telecom, bank_a])
    bank_a.ledger.grants.reject(task_id, theirs)
    task = telecom.ledger.tasks.get_task(task_id)
    assert (task.status, task.failure_reason) == (TaskStatus.FAILED, FailureReason.REJECTED)
    assert telecom.ledger.metering.balance_of(telecom.org_id) == FEE
    assert telecom.ledger.metering.escrow_of(task_id) == 0


def test_worker_failure_refunds_the_requester(consortium: Consortium) -> None:
    bank_a, telecom = consortium.bank_a, consortium.telecom
    theirs = consortium.dataset(bank_a)
    grant = consortium.grant(theirs, bank_a, telecom)
    task_id = submit(consortium, telecom, [theirs], [grant], [telecom, bank_a])
    with reverts("TaskLedgerUnauthorized"):  # not a participant
        consortium.bank_b.ledger.tasks.fail_task(task_id, FailureReason.PROTOCOL_ERROR)
    with reverts("TaskLedgerInvalidReason"):
        bank_a.ledger.tasks.fail_task(task_id, 0)
    with reverts("TaskLedgerInvalidReason"):  # reason codes are stored in 16 bits
        bank_a.ledger.tasks.fail_task(task_id, 2**16)
    bank_a.ledger.tasks.fail_task(task_id, FailureReason.SPEC_MISMATCH)
    task = telecom.ledger.tasks.get_task(task_id)
    assert (task.status, task.failure_reason) == (TaskStatus.FAILED, FailureReason.SPEC_MISMATCH)
    assert telecom.ledger.metering.balance_of(telecom.org_id) == FEE
    with reverts("TaskLedgerInvalidStatus"):
        bank_a.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32)


def test_expiry_refunds_unfinished_and_splits_unsettled(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    data_a, data_b = consortium.dataset(bank_a), consortium.dataset(bank_b)
    grant_a, grant_b = (
        consortium.grant(data_a, bank_a, telecom),
        consortium.grant(data_b, bank_b, telecom),
    )
    unfinished = submit(consortium, telecom, [data_a], [grant_a], [telecom, bank_a], deadline_s=600)
    finished = submit(
        consortium,
        telecom,
        [data_a, data_b],
        [grant_a, grant_b],
        [telecom, bank_a, bank_b],
        deadline_s=600,
    )
    for member in (telecom, bank_a, bank_b):
        member.ledger.tasks.anchor_result(finished, secrets.token_bytes(32), ZERO32)
    with reverts("TaskLedgerNotExpirable"):
        bank_b.ledger.tasks.expire_task(unfinished)

    consortium.travel(601)
    with reverts("TaskLedgerDeadlinePassed"):
        bank_a.ledger.tasks.anchor_result(unfinished, secrets.token_bytes(32), ZERO32)
    anyone = consortium.admin
    anyone.tasks.expire_task(unfinished)
    anyone.tasks.expire_task(finished)
    failed = anyone.tasks.get_task(unfinished)
    assert (failed.status, failed.failure_reason) == (TaskStatus.FAILED, FailureReason.EXPIRED)
    assert anyone.tasks.get_task(finished).status is TaskStatus.SETTLED
    assert anyone.metering.balance_of(telecom.org_id) == FEE
    # nothing earned (no units anchored): equal shares among the providers
    assert anyone.metering.balance_of(bank_a.org_id) == FEE // 2
    assert anyone.metering.balance_of(bank_b.org_id) == FEE - FEE // 2
    with reverts("TaskLedgerNotExpirable"):
        anyone.tasks.expire_task(finished)


def test_submit_validation(consortium: Consortium) -> None:
    bank_a, telecom = consortium.bank_a, consortium.telecom
    data = consortium.dataset(bank_a)
    grant = consortium.grant(data, bank_a, telecom)
    with reverts("TaskLedgerInvalidKind"):
        submit(consortium, telecom, [data], [grant], [telecom, bank_a], kind=Kind.PSI | Kind.FL)
    with reverts("TaskLedgerInvalidProtocol"):
        telecom.ledger.tasks.submit_task(
            spec_hash=secrets.token_bytes(32),
            kind=Kind.PSI,
            protocol=32,
            inputs=[data],
            grant_ids=[grant],
            participants=[telecom.org_id, bank_a.org_id],
            deadline=consortium.now() + 600,
        )
    with reverts("GrantRegistryProtocolNotAllowed"):  # union3 needs an explicit grant
        telecom.ledger.tasks.submit_task(
            spec_hash=secrets.token_bytes(32),
            kind=Kind.PSI,
            protocol=PROTOCOL_IDS["union3"],
            inputs=[data],
            grant_ids=[grant],
            participants=[telecom.org_id, bank_a.org_id],
            deadline=consortium.now() + 600,
        )
    with reverts("TaskLedgerInvalidInputs"):
        submit(consortium, telecom, [], [], [telecom])
    with reverts("TaskLedgerInvalidInputs"):
        submit(consortium, telecom, [data, data], [grant, grant], [telecom, bank_a])
    with reverts("TaskLedgerInvalidInputs"):
        submit(consortium, telecom, [data], [], [telecom, bank_a])
    with reverts("TaskLedgerMissingOwnerParticipant"):
        submit(consortium, telecom, [data], [grant], [telecom])
    with reverts("TaskLedgerInvalidParticipants"):
        submit(consortium, telecom, [data], [grant], [bank_a])
    with reverts("TaskLedgerInvalidDeadline"):
        submit(consortium, telecom, [data], [grant], [telecom, bank_a], deadline_s=0)
    with reverts("GrantRegistryKindNotAllowed"):
        submit(consortium, telecom, [data], [grant], [telecom, bank_a], kind=Kind.FL)
    with reverts("GrantRegistryMismatch"):  # telecom's grant used by bank_b
        submit(consortium, consortium.bank_b, [data], [grant], [consortium.bank_b, bank_a])
    with reverts("TaskLedgerUnknownTask"):
        telecom.ledger.tasks.anchor_result(999, secrets.token_bytes(32), ZERO32)


def test_only_the_metering_disburses_the_ledgers_ether(consortium: Consortium) -> None:
    telecom = consortium.telecom
    tasks = telecom.ledger.tasks
    with reverts("TaskLedgerOnlyMetering"):
        tasks.client.transact(tasks.contract.functions.disburse(telecom.address, 1))


def test_anchor_settle_and_withdraw_guards(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    data = consortium.dataset(bank_a)
    grant = consortium.grant(data, bank_a, telecom)
    bank_b.ledger.orgs.set_dealer_service(bank_b.org_id, True)  # it deals: it owns no input
    task_id = submit(consortium, telecom, [data], [grant], [telecom, bank_a, bank_b])
    tasks = telecom.ledger.tasks
    with reverts("TaskLedgerOnlyGrantRegistry"):
        tasks.client.transact(tasks.contract.functions.onInputApproved(task_id))
    with reverts("TaskLedgerEmptyDigest"):
        telecom.ledger.tasks.anchor_result(task_id, ZERO32, ZERO32)
    for member in (telecom, bank_a, bank_b):
        member.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, 5)
    assert tasks.settlement_of(task_id) == (ZERO32, False)
    with reverts("TaskLedgerUnauthorized"):  # not a participant's operator
        consortium.admin.tasks.settle_task(task_id, ZERO32)
    bank_b.ledger.tasks.settle_task(task_id, ZERO32)  # any participant settles
    # bank_b deals (it owns no input): the one provider is paid the whole fee
    assert tasks.units_of(task_id, bank_b.org_id) == 0
    assert bank_a.ledger.metering.balance_of(bank_a.org_id) == FEE
    assert bank_a.ledger.metering.balance_of(bank_b.org_id) == 0
    with reverts("TaskLedgerInvalidStatus"):
        tasks.settle_task(task_id, ZERO32)

    metering = bank_a.ledger.metering
    with reverts("MeteringInvalidRecipient"):
        metering.withdraw(bank_a.org_id, "0x" + "00" * 20, 1)
    with reverts("MeteringTransferFailed"):  # the Metering accepts no ether
        metering.withdraw(bank_a.org_id, metering.address, 1)

    bank_a.ledger.data.retire(data)
    with reverts("TaskLedgerInputRetired"):
        submit(consortium, telecom, [data], [ZERO32], [telecom, bank_a])


def test_many_participants_and_a_requester_in_a_late_seat(consortium: Consortium) -> None:
    """Participants past the second seat have their own storage; the requester may sit anywhere."""
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    insurer = onboard(consortium.admin, "insurer", 4)
    data_a, data_b, own = (consortium.dataset(m, rows=300) for m in (bank_a, bank_b, telecom))
    grant_a, grant_b = (
        consortium.grant(data_a, bank_a, telecom),
        consortium.grant(data_b, bank_b, telecom),
    )
    seats = [bank_a, insurer, bank_b, telecom]
    insurer.ledger.orgs.set_dealer_service(insurer.org_id, True)  # it owns no input: it deals
    task_id = submit(consortium, telecom, [data_b, own, data_a], [grant_b, ZERO32, grant_a], seats)
    tasks = consortium.admin.tasks
    task = tasks.get_task(task_id)
    assert task.participants == tuple(member.org_id for member in seats)
    assert (task.requester_org, task.status) == (telecom.org_id, TaskStatus.AUTHORISED)
    assert all(tasks.is_participant(task_id, member.org_id) for member in seats)
    units = {bank_a.org_id: 100, insurer.org_id: 50, bank_b.org_id: 300}
    for member in seats[:3]:
        member.ledger.tasks.anchor_result(
            task_id, secrets.token_bytes(32), ZERO32, units[member.org_id]
        )
    with reverts("TaskLedgerInvalidStatus"):  # the requester in seat 3 has not anchored yet
        telecom.ledger.tasks.settle_task(task_id, ZERO32)
    telecom.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, 1_000)
    assert tasks.get_task(task_id).anchored_count == 4
    assert tasks.get_task(task_id).status is TaskStatus.COMPLETED
    telecom.ledger.tasks.settle_task(task_id, ZERO32)
    metering = consortium.admin.metering
    # the inputs' order is [data_b, own, data_a]: bank_b first, bank_a last (the remainder);
    # the requester's own input and the dealing insurer earn nothing
    share_b = FEE * 300 // 400
    assert metering.balance_of(telecom.org_id) == metering.balance_of(insurer.org_id) == 0
    assert metering.balance_of(bank_b.org_id) == share_b
    assert metering.balance_of(bank_a.org_id) == FEE - share_b
    assert metering.usage_of(data_a) == metering.usage_of(data_b) == 1
    assert metering.usage_of(own) == 0


def test_owners_of_parent_datasets_are_paid(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    parent = consortium.dataset(bank_a)
    derived = consortium.dataset(bank_b, parents=(parent,), upstream_bps=2_000)
    grant = consortium.grant(derived, bank_b, telecom)
    task_id = submit(consortium, telecom, [derived], [grant], [telecom, bank_b])
    for member in (telecom, bank_b):
        member.ledger.tasks.anchor_result(task_id, secrets.token_bytes(32), ZERO32, 10)
    # bank_a does not participate: it is paid, by the ledger, as the owner of the input's parent
    bank_b.ledger.tasks.settle_task(task_id, ZERO32)
    assert consortium.admin.metering.balance_of(bank_b.org_id) == FEE * 8_000 // 10_000
    assert consortium.admin.metering.balance_of(bank_a.org_id) == FEE - FEE * 8_000 // 10_000
    assert consortium.admin.metering.balance_of(telecom.org_id) == 0
