"""Derived datasets (issue 22, item 4's building block): a PSI whose intersection both parties
learn aligns their rows; each registers its aligned rows as a dataset of its own whose parents on
chain are the PSI's inputs; joint statistics then run on the aligned rows only, and the derived
data's earnings pass upstream to its parents' owners."""

from __future__ import annotations

import secrets

import pytest

from privledger.sdk import NotFound, psi_task

from .conftest import Running
from .test_query_cli import DEALER, register, sdk
from .test_walking_path import FEE, grant

SHARED = 30  # customers both hold: above every release threshold of level-2 data


def _phones(count: int) -> list[str]:
    return [f"+86{secrets.randbelow(10**11):011d}" for _ in range(count)]


def test_aligned_rows_become_derived_datasets_and_joint_statistics_run_on_them(
    running: Running,
) -> None:
    shared, only_telecom, only_bank = _phones(SHARED), _phones(12), _phones(9)
    spend = {phone: 10 + index for index, phone in enumerate(shared + only_telecom)}
    loans = {phone: 1000 + 7 * index for index, phone in enumerate(shared + only_bank)}
    telecom = register(
        running, "telecom", "spend", "phone,spend", [f"{p},{v}" for p, v in spend.items()]
    )
    bank = register(
        running, "bank-a", "loans", "phone,loan", [f"{p},{v}" for p, v in loans.items()]
    )
    terms = {
        "protocols": ["kkrt"],
        "columns": {"phone": ["join"], "loan": ["aggregate"]},
        "outputs": ["requester", "both"],
    }
    grant(running, "bank-a", bank, "telecom", kinds=[], terms=terms)
    with sdk(running, "telecom") as analyst:
        body = psi_task(telecom, bank, column="phone", protocol="kkrt", output="both", fee_wei=FEE)
        psi = analyst.wait(analyst.submit(body).task_id, timeout_s=120)
    assert psi.status == "settled", psi

    with sdk(running, "telecom", "data_owner") as owner:
        mine = owner.derive_dataset(psi.task_id, "telecom-aligned", unit_price=10**9)
        with pytest.raises(NotFound):  # a task this node never took part in
            owner.derive_dataset(10**9, "nothing", unit_price=0)
    with sdk(running, "bank-a", "data_owner") as owner:
        theirs = owner.derive_dataset(
            psi.task_id, "bank-aligned", unit_price=10**9, upstream_bps=2_000
        )
    assert mine.row_count == theirs.row_count == SHARED
    assert mine.columns == ["phone", "spend"] and theirs.columns == ["phone", "loan"]
    chain = running.ledger(0).data
    for derived in (mine, theirs):
        record = chain.get_dataset(bytes.fromhex(derived.dataset_id[2:]))
        assert sorted(record.parents) == sorted(bytes.fromhex(d[2:]) for d in (telecom, bank))
        assert record.level == 2
    assert chain.get_dataset(bytes.fromhex(theirs.dataset_id[2:])).upstream_bps == 2_000

    aligned_terms = {"protocols": ["joint-stats"], "columns": {"loan": ["aggregate"]}}
    grant(running, "bank-a", theirs.dataset_id, "telecom", kinds=[], terms=aligned_terms)
    with sdk(running, "telecom") as analyst:
        answer = analyst.joint_stats(
            [mine.dataset_id, theirs.dataset_id],
            column=["spend", "loan"],
            dealer=running.org_ids[DEALER],
            fee_wei=FEE,
            timeout_s=180,
        )
        task = analyst.task(answer.task_id)
    aligned = [spend[p] for p in shared] + [loans[p] for p in shared]
    assert answer.count == len(aligned) and answer.sum == pytest.approx(sum(aligned))
    assert task.status == "settled"
    paid = {
        int(e.args["payeeOrg"]): int(e.args["amount"])
        for e in task.timeline
        if e.event == "FeeAllocated"
    }
    assert sum(paid.values()) == FEE and running.org_ids["bank-a"] in paid
