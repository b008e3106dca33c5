"""A partner's answer to "your derived dataset of task N" holds only as the chain has it
(``privledger.node.derived._check_on_chain``): a lying partner node cannot hand the requester a
dataset that is not its own, not derived from the task's inputs, or not granted to the requester,
nor a grant of another dataset, to another organisation, revoked or expired. Played on the real
chain: the answers are what a modified partner node could send."""

from __future__ import annotations

import secrets
from types import SimpleNamespace
from typing import Any

import pytest

from privledger.node.derived import DeriveError, _check_on_chain
from privledger.wire.assets import DerivedOut

from .conftest import Consortium

pytestmark = pytest.mark.security


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


@pytest.fixture
def set_task(consortium: Consortium) -> dict[str, Any]:
    """Telecom's PSI task on its own dataset and bank-a's, and bank-a's honest answer: its
    aligned rows registered with the task's inputs as parents, granted to the telecom."""
    bank_a, telecom = consortium.bank_a, consortium.telecom
    task_id, _spec_hash, (mine, theirs) = consortium.psi_task()
    derived = consortium.dataset(bank_a, parents=(mine, theirs), upstream_bps=500)
    derived_grant = consortium.grant(derived, bank_a, telecom)
    honest = DerivedOut(
        org_id=bank_a.org_id,
        dataset_id=_hex(derived),
        name="customers.t1",
        columns=["phone"],
        row_count=30,
        grant_id=_hex(derived_grant),
    )
    requester = SimpleNamespace(ledger=telecom.ledger, org_id=telecom.org_id)
    return {"task": task_id, "honest": honest, "requester": requester, "inputs": (mine, theirs)}


def _check(set_task: dict[str, Any], consortium: Consortium, **lie: Any) -> None:
    answer = set_task["honest"].model_copy(update=lie)
    _check_on_chain(set_task["requester"], set_task["task"], consortium.bank_a.org_id, answer)


def test_the_honest_answer_holds(set_task: dict[str, Any], consortium: Consortium) -> None:
    _check(set_task, consortium)


def test_a_lying_partner_is_refused(set_task: dict[str, Any], consortium: Consortium) -> None:
    bank_a, bank_b, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    mine, theirs = set_task["inputs"]
    honest = set_task["honest"]
    # its parent dataset itself, not derived from anything
    not_derived = consortium.dataset(bank_a)
    not_derived_grant = consortium.grant(not_derived, bank_a, telecom)
    # derived from only one of the task's inputs, or from another task's
    one_parent = consortium.dataset(bank_a, parents=(theirs,))
    one_parent_grant = consortium.grant(one_parent, bank_a, telecom)
    # another organisation's dataset derived from the same inputs
    foreign = consortium.dataset(bank_b, parents=(mine, theirs))
    foreign_grant = consortium.grant(foreign, bank_b, telecom)
    # the honest dataset granted to someone else; another dataset's grant to the requester
    elsewhere = consortium.grant(bytes.fromhex(honest.dataset_id[2:]), bank_a, bank_b)
    lies: list[dict[str, Any]] = [
        {"dataset_id": _hex(not_derived), "grant_id": _hex(not_derived_grant)},
        {"dataset_id": _hex(one_parent), "grant_id": _hex(one_parent_grant)},
        {"dataset_id": _hex(foreign), "grant_id": _hex(foreign_grant)},
        {"grant_id": _hex(elsewhere)},
        {"grant_id": _hex(not_derived_grant)},
        {"grant_id": None},
        {"dataset_id": _hex(secrets.token_bytes(32))},  # no such dataset
        {"grant_id": _hex(secrets.token_bytes(32))},  # no such grant
        {"dataset_id": "0xnot-hex"},
    ]
    for lie in lies:
        with pytest.raises(DeriveError):
            _check(set_task, consortium, **lie)


def test_a_revoked_or_expired_grant_is_refused(
    set_task: dict[str, Any], consortium: Consortium
) -> None:
    bank_a = consortium.bank_a
    bank_a.ledger.grants.revoke(bytes.fromhex(set_task["honest"].grant_id[2:]))
    with pytest.raises(DeriveError, match="live grant"):
        _check(set_task, consortium)
    another = consortium.grant(
        bytes.fromhex(set_task["honest"].dataset_id[2:]), bank_a, consortium.telecom
    )
    _check(set_task, consortium, grant_id=_hex(another))
    consortium.travel(2 * 86_400)  # past the grant's expiry
    with pytest.raises(DeriveError, match="live grant"):
        _check(set_task, consortium, grant_id=_hex(another))
