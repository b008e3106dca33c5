"""A reorganisation under running nodes (issue 16, item 5): anvil takes back the blocks mined since
a task's submission -- its start, both anchors, its settlement, a second task's submission, and
whatever else the consortium sent meanwhile (audit-log batches) -- and mines empty blocks in their
place. The nodes follow the new chain: the index and the explorer forget what the chain no longer
holds, the workers anchor again and settle the first task exactly once, the requester records the
second task as lost, the audit log is anchored again, and later tasks still run (no nonce of an
organisation waits behind a gap).

Only blocks mined by this test are taken back; what earlier tests left on the chain stays, and the
nodes are as usable afterwards as before (the tests after this module run on them)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import ExitStack
from typing import Any

from web3.types import RPCEndpoint

from privledger.evm.accounts import dev_account
from privledger.evm.contracts import TaskStatus

from .conftest import Running, paused, wait_until
from .test_explorer import REGULATOR, explorer, login
from .test_walking_path import FEE, fee_allocations, grant, submit, wait_status

FINISHED = {"settled", "done"}  # a participant's record of a task settled (by it or another)


def _rpc(running: Running, method: str, *params: Any) -> Any:
    answer = running.w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in answer, answer
    return answer["result"]


def _settled(running: Running, task_id: int) -> dict[str, Any]:
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task_id, {"settled", "failed"})
    assert final["status"] == "settled", final
    return final


def _local(running: Running, org: str, task_id: int) -> tuple[str, str | None, str] | None:
    """``org``'s own record of the task (state, failure, spec hash), read from its node's store:
    a task the chain no longer holds has no API view, only this record."""
    path = running.settings.var_dir / "nodes" / org / "node.db"
    with sqlite3.connect(path) as database:
        found = database.execute(
            "SELECT state, failure, spec_hash FROM local_task WHERE task_id = ?", (task_id,)
        ).fetchone()
    return None if found is None else (found[0], found[1], found[2])


def _state(running: Running, org: str, task_id: int) -> str | None:
    found = _local(running, org, task_id)
    return None if found is None else found[0]


def _audit(running: Running, after: int) -> list[dict[str, Any]]:
    with running.client("bank-a", "data_owner") as owner:
        response = owner.get("/audit", params={"after": after, "limit": 500})
        assert response.status_code == 200, response.text
        return list(response.json())


def _proven(running: Running, entry_id: int) -> bool:
    with running.client("bank-a", "data_owner") as owner:
        return owner.get(f"/audit/{entry_id}/proof").status_code == 200


def test_a_reorganisation_under_running_nodes_is_followed(running: Running) -> None:
    ledger = running.ledger(0)
    telecom_data = running.register("telecom")
    bank_data = running.register("bank-a")
    grant(running, "bank-a", bank_data, "telecom")
    audit_start = max((entry["id"] for entry in _audit(running, 0)), default=0)
    first = submit(running, telecom_data, bank_data)["taskId"]
    _settled(running, first)
    second = submit(running, telecom_data, bank_data)["taskId"]
    _settled(running, second)
    with explorer(running) as auditor:
        assert login(auditor, dev_account(REGULATOR)).status_code == 200
        story = auditor.get(f"/explorer/api/tasks/{first}").json()
    submitted = next(e["block_number"] for e in story["events"] if e["event"] == "TaskSubmitted")
    audited = _audit(running, audit_start)
    assert audited

    # anvil rewrites its chain in steps: a transaction mined meanwhile (a node's audit batch)
    # once left it without a block below its head, which no node could index past. So the nodes
    # are frozen around it (after what they sent is mined) and see the new chain as one change
    with ExitStack() as frozen:
        for node in running.nodes.values():
            frozen.enter_context(paused(node))
        time.sleep(0.5)
        depth = running.w3.eth.block_number - submitted
        _rpc(running, "anvil_reorg", depth, [])  # as many empty blocks in their place
    assert ledger.tasks.get_task(first).status is TaskStatus.AUTHORISED
    assert ledger.tasks.task_count() == first  # the second submission is gone

    # the workers anchor the first task again; it completes and is settled once on the new chain
    final = _settled(running, first)
    assert len(ledger.tasks._logs("TaskSettled", first)) == 1
    assert fee_allocations(final) == {running.org_ids["bank-a"]: FEE}
    for org in ("telecom", "bank-a"):  # whoever settled first "settled", the other "done"
        wait_until(lambda org=org: _state(running, org, first) in FINISHED, f"{org}'s record")
    # the requester's record of the vanished task says what happened to it
    wait_until(lambda: _state(running, "telecom", second) == "failed", "the lost task's record")
    _, failure, _ = _local(running, "telecom", second) or ("", "", "")
    assert failure is not None and failure.startswith("CHAIN_REORG"), failure

    # the explorer shows the new chain: the first task's story from its blocks, no second task
    with explorer(running) as auditor:
        assert login(auditor, dev_account(REGULATOR)).status_code == 200
        story = auditor.get(f"/explorer/api/tasks/{first}").json()
        assert story["status"] == "settled" and story["settlement"]["settled"]
        assert [e["event"] for e in story["events"]].count("TaskSettled") == 1
        for event in story["events"]:
            receipt = running.w3.eth.get_transaction_receipt(event["tx_hash"])
            assert receipt["blockNumber"] == event["block_number"], event
        assert auditor.get(f"/explorer/api/tasks/{second}").status_code == 404
        listed = auditor.get("/explorer/api/settlements").json()
    settled_ids = [row["task_id"] for row in listed["rows"]]
    assert settled_ids.count(first) == 1 and second not in settled_ids
    # every org the explorer lists (other tests of the session may have onboarded more) as on chain
    balances = {b["org_id"]: b["balance"] for b in listed["balances"]}
    assert set(running.org_ids.values()) <= set(balances)
    assert balances == {org: ledger.metering.balance_of(org) for org in balances}

    # the audit entries whose batches vanished are anchored again and provable on the new chain
    def reanchored() -> bool:
        entries = _audit(running, audit_start)[: len(audited)]
        return all(e["batchId"] is not None and _proven(running, e["id"]) for e in entries)

    wait_until(reanchored, "the audit log anchored again", timeout_s=60)

    # later tasks run: the second task's id is taken by a new one, no nonce waits behind a gap
    third = submit(running, telecom_data, bank_data)["taskId"]
    assert third == second
    _settled(running, third)
    wait_until(lambda: _state(running, "telecom", third) in FINISHED, "the third task's record")
    senders = set()
    with explorer(running) as auditor:
        assert login(auditor, dev_account(REGULATOR)).status_code == 200
        for task_id in (first, third):
            story = auditor.get(f"/explorer/api/tasks/{task_id}").json()
            senders |= {
                running.w3.eth.get_transaction(e["tx_hash"])["from"] for e in story["events"]
            }
    for account in senders:  # submissions, starts, anchors and settlements: none left waiting
        pending = running.w3.eth.get_transaction_count(account, "pending")
        assert pending == running.w3.eth.get_transaction_count(account, "latest"), account
