"""The read-only views other contracts, the node and the explorer rely on, each asked directly."""

from __future__ import annotations

import secrets

from privledger.evm.accounts import dev_account
from privledger.evm.contracts import FailureReason, Kind, OrgStatus, Role
from privledger.evm.ledger import Ledger
from privledger.evm.merkle import MerkleTree

from .conftest import Consortium, reverts


def test_contract_constants_match_the_python_enums(ledger: Ledger) -> None:
    orgs = ledger.orgs.contract.functions
    assert [orgs.ROLE_ORG_ADMIN().call(), orgs.ROLE_DATA_OWNER().call()] == [1, 2]
    assert [orgs.ROLE_OPERATOR().call(), orgs.ROLE_AUDITOR().call()] == [4, 8]
    assert [int(role) for role in Role] == [1, 2, 4, 8]
    grants = ledger.grants.contract.functions
    kinds = [grants.KIND_PSI(), grants.KIND_PIR(), grants.KIND_STATS(), grants.KIND_FL()]
    assert [kind.call() for kind in kinds] == [int(kind) for kind in Kind] == [1, 2, 4, 8]
    tasks = ledger.tasks.contract.functions
    assert tasks.REASON_REJECTED().call() == FailureReason.REJECTED
    assert tasks.REASON_EXPIRED().call() == FailureReason.EXPIRED
    assert [tasks.MAX_INPUTS().call(), tasks.MAX_PARTICIPANTS().call()] == [16, 16]
    data = ledger.data.contract.functions
    assert [data.MAX_LEVEL().call(), data.MAX_PARENTS().call()] == [4, 16]


def test_dataset_lookups(consortium: Consortium) -> None:
    bank_a, bank_b = consortium.bank_a, consortium.bank_b
    parent = consortium.dataset(bank_a)
    child = consortium.dataset(bank_b, parents=(parent,), upstream_bps=1_000)
    data = consortium.admin.data
    assert (data.owner_of(parent), data.owner_of(child)) == (bank_a.org_id, bank_b.org_id)
    assert (data.parents_of(parent), data.parents_of(child)) == ((), (parent,))
    assert data.owner_and_retired(child) == (bank_b.org_id, False)
    assert not data.is_retired(parent)
    bank_a.ledger.data.retire(parent)
    assert data.is_retired(parent)
    assert data.owner_and_retired(parent) == (bank_a.org_id, True)
    assert not data.is_retired(child)  # retiring a parent leaves derived data alone

    unknown = secrets.token_bytes(32)
    for view in (data.owner_of, data.is_retired, data.parents_of, data.owner_and_retired):
        with reverts("DataRegistryUnknownDataset"):
            view(unknown)
    assert data.usage_of(unknown) == consortium.admin.metering.usage_of(unknown) == 0


def test_org_with_role_follows_roles_and_status(consortium: Consortium) -> None:
    bank = consortium.bank_a
    orgs = consortium.admin.orgs
    assert orgs.org_with_role(bank.address, Role.OPERATOR) == bank.org_id
    assert orgs.org_with_role(bank.address, Role.OPERATOR | Role.DATA_OWNER) == bank.org_id
    assert orgs.org_with_role(bank.address, Role.OPERATOR | Role.AUDITOR) == 0  # every bit needed
    assert orgs.org_with_role(bank.address, Role(0)) == 0
    assert orgs.org_with_role(dev_account(9).address, Role.OPERATOR) == 0  # in no organisation
    orgs.set_org_status(bank.org_id, OrgStatus.SUSPENDED)
    assert orgs.org_with_role(bank.address, Role.OPERATOR) == 0
    orgs.set_org_status(bank.org_id, OrgStatus.ACTIVE)
    assert orgs.org_with_role(bank.address, Role.OPERATOR) == bank.org_id


def test_task_count_and_participation(consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    tasks = consortium.admin.tasks
    before = tasks.task_count()
    dataset = consortium.dataset(bank_a)
    task_id = telecom.ledger.tasks.submit_task(
        spec_hash=secrets.token_bytes(32),
        kind=Kind.PSI,
        protocol=1,  # ecdh
        inputs=[dataset],
        grant_ids=[consortium.grant(dataset, bank_a, telecom)],
        participants=[bank_a.org_id, telecom.org_id],
        deadline=consortium.now() + 600,
    )
    assert task_id == tasks.task_count() == before + 1
    assert tasks.is_participant(task_id, bank_a.org_id)
    assert tasks.is_participant(task_id, telecom.org_id)
    assert not tasks.is_participant(task_id, bank_b.org_id)
    assert not tasks.is_participant(task_id, 0)
    # organisation ids are stored in 32 bits: a larger id must not alias a participant
    assert not tasks.is_participant(task_id, 2**32 + bank_a.org_id)
    assert not tasks.is_participant(task_id + 1, bank_a.org_id)  # no such task


def test_batch_count(consortium: Consortium) -> None:
    anchors = consortium.bank_a.ledger.anchors
    before = anchors.batch_count()
    tree = MerkleTree([secrets.token_bytes(32) for _ in range(3)])
    batch_id, _ = anchors.anchor_batch(tree.root, 3, b"views".ljust(32, b"\0"))
    assert batch_id == anchors.batch_count() == before + 1
