"""A task's spec (datasets, columns, organisations) goes to the other participants' nodes only.

The requester's node answers ``GET /api/v1/peer/tasks/{id}/spec`` for a call signed by the
account of a participant organisation's node (``privledger.node.peer_auth``), as the workers'
own fetches are; an anonymous caller, a forged or replayed signature and an organisation outside
the task are refused. The test holds the node homes, so it signs with the nodes' own accounts.
"""

from __future__ import annotations

from typing import Any

import httpx

from privledger.evm.hashing import keccak256

from .conftest import Running, peer_client
from .test_walking_path import grant, submit, wait_status


def _read_as(running: Running, org: str, url: str) -> httpx.Response:
    with peer_client(running, org) as client:
        return client.get(url, timeout=30)


def test_only_participants_read_a_task_spec(running: Running) -> None:
    mine, theirs = running.register("telecom"), running.register("bank-a")
    grant(running, "bank-a", theirs, "telecom")
    task_id = submit(running, mine, theirs)["taskId"]
    with running.client("telecom", "operator") as client:
        assert wait_status(client, task_id, {"settled", "failed"})["status"] == "settled"
    url = f"{running.nodes['telecom'].url}/api/v1/peer/tasks/{task_id}/spec"

    anonymous = httpx.get(url, timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    assert "phone" not in anonymous.text and theirs not in anonymous.text

    outsider = _read_as(running, "bank-b", url)  # a consortium member, not in this task
    assert outsider.status_code == 403 and outsider.json()["error"]["code"] == "forbidden"
    assert theirs not in outsider.text

    participant = _read_as(running, "bank-a", url)
    assert participant.status_code == 200
    on_chain = running.ledger(0).tasks.get_task(task_id).spec_hash
    assert keccak256(participant.content) == on_chain

    # the participant's signed headers, replayed or pinned on another caller's request, fail
    replayed = httpx.get(url, headers=participant.request.headers, timeout=30)
    assert replayed.status_code == 401 and "replay" in replayed.json()["error"]["message"]
    forged = dict(participant.request.headers)
    forged["x-source-node-id"] = str(running.org_ids["telecom"])
    forged["x-nonce"] = "f" * 32
    assert httpx.get(url, headers=forged, timeout=30).status_code in (401, 403)

    # the telecom's audit log names the participant's read, and not the outsider's: a member's
    # reads of tasks it has no part in are counted like anonymous calls, never an entry each
    with running.client("telecom", "data_owner") as owner:
        named = {(e["actor"], e["subject"], e["outcome"][:3]) for e in _api_entries(owner)}
    subject = f"GET /api/v1/peer/tasks/{task_id}/spec"
    assert (f"peer org {running.org_ids['bank-a']}", subject, "200") in named
    outsider = f"peer org {running.org_ids['bank-b']}"  # which reads other tasks' specs here
    assert not any(actor == outsider and read == subject for actor, read, _ in named)


def _api_entries(owner: httpx.Client) -> list[dict[str, Any]]:
    """Every API call in the node's audit log, page by page (oldest first), up to the last full
    page: each page's own call is logged too, so there is always one more entry."""
    found: list[dict[str, Any]] = []
    while True:
        after = found[-1]["id"] if found else 0
        page = owner.get("/audit", params={"action": "api", "limit": 500, "after": after}).json()
        found += page
        if len(page) < 500:
            return found
