"""A published PSI service's grant serves calls of that service alone (grant term ``service``).

The attack: a caller authorised for a service left ``service`` out of its task spec. The task ran
and settled under the service's grant and terms, but the provider's worker logs a call under the
name the spec gives, so it never logged this one: it was missing from ``GET /services/{name}/calls``
and from the anchored batches, against "every call logged and anchored" (F12). A task through
``POST /tasks`` names no service: a call goes through ``POST /service-calls``."""

from __future__ import annotations

import pytest

from privledger.evm.contracts import FailureReason
from privledger.node.spec import SpecInput
from tests.e2e.test_walking_path import wait_status

from .malicious import Mallory
from .test_requester_attacks import _failed_for, _phones, _refused, _spec, published_service

pytestmark = pytest.mark.security

PRICE = 10**15


def test_a_service_s_grant_runs_only_calls_that_name_the_service(mallory: Mallory) -> None:
    running = mallory.running
    data = running.register("bank-a")
    name, issued = published_service(mallory, data, PRICE)
    mine = mallory.register(["phone"], _phones(mallory, "bank-a", 20, 20))
    inputs = [{"dataset": mine, "column": "phone"}, {"dataset": data, "column": "phone"}]

    # mallory's own node refuses the unnamed call (the service's grant is its only one on data)
    _refused(mallory.submit({"inputs": inputs, "feeWei": PRICE}), "service")

    # its modified node submits it all the same: the provider refuses it before reading data
    items = [
        SpecInput(dataset=mine, org=mallory.org_id, column="phone"),
        SpecInput(dataset=data, org=running.org_ids["bank-a"], column="phone"),
    ]
    before = mallory.balance()
    unnamed = mallory.forge(_spec(mallory, "ecdh", items), [bytes(32), issued], fee=PRICE, run=True)
    _failed_for(mallory, unnamed, FailureReason.TERMS_VIOLATION, before)

    # a call that names the service runs, and is logged
    call = {"provider": running.org_ids["bank-a"], "service": name, "dataset": mine}
    with mallory.client() as caller:
        named = caller.post("/service-calls", json={**call, "column": "phone"})
        assert named.status_code == 201, named.text
        task_id = named.json()["taskId"]
        assert wait_status(caller, task_id, {"settled", "failed"})["status"] == "settled"
    with running.client("bank-a", "data_owner") as owner:
        logged = owner.get(f"/services/{name}/calls").json()
    assert {call["taskId"]: call["outcome"] for call in logged} == {task_id: "ran"}, logged
