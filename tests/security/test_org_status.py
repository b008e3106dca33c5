"""A requester organisation the consortium suspends after its task was submitted gets nothing
of a provider's data: every provider re-reads each participant's status before it reads data
and again before its output leaves."""

from __future__ import annotations

import pytest

from privledger.evm.contracts import FailureReason, OrgStatus
from tests.e2e.conftest import paused

from .malicious import Mallory, grant
from .test_requester_attacks import _failed_for, _phones

pytestmark = pytest.mark.security


def test_a_requester_suspended_after_its_submission_is_refused(mallory: Mallory) -> None:
    """Mallory's task waits for bank-a's node (paused); meanwhile the consortium suspends
    mallory. bank-a's node re-read the task and its grants but not the requester's status: it
    ran the task and mallory's node received the intersection."""
    running = mallory.running
    admin = running.ledger(0)
    data = running.register("bank-a")
    grant(running, "bank-a", data, mallory.org_id, kinds=["psi"])
    keys = mallory.register(["phone"], _phones(mallory, "bank-a", 40, 10))
    inputs = [{"dataset": keys, "column": "phone"}, {"dataset": data, "column": "phone"}]
    before = mallory.balance()
    try:
        with mallory.attacking("ignore-status"), paused(running.nodes["bank-a"]) as resume:
            response = mallory.submit({"protocol": "ecdh", "inputs": inputs})
            assert response.status_code == 201, response.text
            admin.orgs.set_org_status(mallory.org_id, OrgStatus.SUSPENDED)
            assert not admin.orgs.is_active(mallory.org_id)
            resume()
            _failed_for(mallory, response.json()["taskId"], FailureReason.GRANT_INVALID, before)
    finally:
        admin.orgs.set_org_status(mallory.org_id, OrgStatus.ACTIVE)
