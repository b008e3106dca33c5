"""Component identity (issue 22, item 2) against a malicious requester: a task's spec names the
component that runs it by name, version and code hash; an honest provider runs only the
component it has at that hash, and only a component its grant's terms allow."""

from __future__ import annotations

import time

import pytest

from privledger.evm.contracts import FailureReason, TaskStatus
from privledger.node.components import installed
from privledger.node.spec import SpecInput

from .malicious import Mallory, grant, wait_closed
from .test_requester_attacks import _failed_for, _phones, _refused, _spec

pytestmark = pytest.mark.security


def _psi_inputs(mallory: Mallory, data: str) -> tuple[list[dict[str, str]], list[SpecInput]]:
    probes = mallory.register(["phone"], _phones(mallory, "bank-a", 12, 20))
    bank_a = mallory.running.org_ids["bank-a"]
    body = [{"dataset": probes, "column": "phone"}, {"dataset": data, "column": "phone"}]
    spec_inputs = [
        SpecInput(dataset=probes, org=mallory.org_id, column="phone"),
        SpecInput(dataset=data, org=bank_a, column="phone"),
    ]
    return body, spec_inputs


def test_a_provider_runs_no_component_but_the_one_it_has_at_the_named_hash(
    mallory: Mallory,
) -> None:
    """Mallory names the ECDH component at code it does not have (another build, a patched
    one): bank-a fails the task with COMPONENT_MISMATCH before it reads its data."""
    running = mallory.running
    data = running.register("bank-a")
    issued = grant(running, "bank-a", data, mallory.org_id, kinds=["psi"])
    _, inputs = _psi_inputs(mallory, data)
    honest = _spec(mallory, "ecdh", inputs)
    patched = honest.component.model_copy(update={"hash": "0x" + "ee" * 32})
    forged = honest.model_copy(update={"component": patched})
    before = mallory.balance()
    task_id = mallory.forge(forged, [bytes(32), issued])
    _failed_for(mallory, task_id, FailureReason.COMPONENT_MISMATCH, before)


def test_a_grant_restricted_to_a_component_hash_refuses_another(mallory: Mallory) -> None:
    running = mallory.running
    data = running.register("bank-a")
    elsewhere = "0x" + "11" * 32  # a component nobody here has: KKRT is not it
    terms = {"protocols": ["kkrt"], "columns": {"phone": ["join"]}, "components": [elsewhere]}
    issued = grant(running, "bank-a", data, mallory.org_id, terms=terms)
    body, inputs = _psi_inputs(mallory, data)
    _refused(mallory.submit({"protocol": "kkrt", "inputs": body}), "components")

    before = mallory.balance()  # mallory's key and a modified node: the provider refuses
    task_id = mallory.forge(_spec(mallory, "kkrt", inputs), [bytes(32), issued])
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)

    kkrt = installed()["kkrt"].ref.hash  # the same code as the nodes': the same checkout
    grant(running, "bank-a", data, mallory.org_id, terms={**terms, "components": [kkrt]})
    response = mallory.submit({"protocol": "kkrt", "inputs": body})
    assert response.status_code == 201, response.text
    task_id = response.json()["taskId"]
    assert wait_closed(running, task_id).status is TaskStatus.SETTLED
    deadline = time.monotonic() + 30
    while (result := mallory.result(task_id)).status_code != 200:
        assert time.monotonic() < deadline, result.text
        time.sleep(0.2)
    assert len(result.json()["items"]) == 12
