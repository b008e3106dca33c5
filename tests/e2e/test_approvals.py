"""The approval inbox with real node processes: a task waiting for bank-b's owner is shown from its
spec, fetched from the telecom's node and checked against the chain, term by term against the
grants bank-b gave the telecom (revoked, for another kind) or the default terms; a requester's
node that is down or serves a forged spec gives a status, never a 500, and cannot be approved."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from privledger.config import NodeSettings
from privledger.store.db import make_engine
from privledger.store.models import LocalTask

from .conftest import Running, restarted_after
from .test_walking_path import FEE, grant, submit, wait_status


def approval(running: Running, task_id: int, dataset: str) -> dict[str, Any]:
    """The request as bank-b's owner sees it, alone and in the list (the same)."""
    with running.client("bank-b", "data_owner") as owner:
        one = owner.get(f"/approvals/{task_id}/{dataset}")
        assert one.status_code == 200, one.text
        listed = [a for a in owner.get("/approvals").json() if a["taskId"] == task_id]
    assert listed == [one.json()]
    shown: dict[str, Any] = one.json()
    return shown


def forge_spec(running: Running, task_id: int) -> None:
    """Make the telecom's node serve, for its task, a spec that asks for another column of the
    provider's than the spec hashed on chain (the row's spec hash left as it was)."""
    home = running.settings.var_dir / "nodes" / "telecom"
    engine = make_engine(NodeSettings(org="telecom", home=home).resolved_database_url)
    with Session(engine) as session:
        row = session.get(LocalTask, task_id)
        assert row is not None and row.spec_json is not None
        forged = json.loads(row.spec_json)
        forged["inputs"][1]["column"] = "segment"
        row.spec_json = json.dumps(forged, sort_keys=True, separators=(",", ":"))
        session.add(row)
        session.commit()
    engine.dispose()


def decide(running: Running, task_id: int, dataset: str, decision: str) -> Any:
    with running.client("bank-b", "data_owner") as owner:
        return owner.post(f"/approvals/{task_id}/{dataset}", json={"decision": decision})


def test_a_request_is_shown_term_by_term_against_the_owners_grants(running: Running) -> None:
    telecom, bank = running.register("telecom"), running.register("bank-b")
    pir = grant(running, "bank-b", bank, "telecom", kinds=["pir"])  # another kind of task
    floor = grant(
        running,
        "bank-b",
        bank,
        "telecom",
        terms={
            "protocols": ["ecdh"],
            "columns": {"phone": ["join"]},
            "minFeeWei": FEE * 10,
            "purpose": "fraud screening",
        },
    )
    with running.client("bank-b", "data_owner") as owner:
        assert owner.delete(f"/grants/{floor['grantId']}").status_code == 200
    task = submit(running, telecom, bank)
    assert task["status"] == "submitted"  # no usable grant: bank-b's owner is asked

    shown = approval(running, task["taskId"], bank)
    assert (shown["status"], shown["specStatus"], shown["specMessage"]) == (
        "pending",
        "verified",
        None,
    )
    assert (shown["protocol"], shown["feeWei"]) == ("ecdh", FEE)  # on chain
    telecom_org = running.org_ids["telecom"]
    assert shown["request"] == {
        "protocol": "ecdh",
        "columnUses": [{"column": "phone", "use": "join"}],
        "output": "requester",
        "recipients": [telecom_org],
        "dealerOrg": None,
        "participants": [telecom_org, running.org_ids["bank-b"]],
    }
    revoked, other_kind = shown["reviews"]  # newest grant first
    assert (revoked["grantId"], revoked["grantState"]) == (floor["grantId"], "revoked")
    assert revoked["purpose"] == "fraud screening"
    assert revoked["violation"].startswith("term 'min_fee_wei'")
    checks = {check["term"]: check for check in revoked["terms"]}
    assert [term for term, check in checks.items() if not check["kept"]] == ["min_fee_wei"]
    assert checks["min_fee_wei"]["allowed"] == f"at least {FEE * 10} wei"
    assert checks["columns"] == {
        "term": "columns",
        "requested": "phone: join",
        "allowed": "phone: join",
        "kept": True,
    }
    assert (other_kind["grantId"], other_kind["grantState"]) == (pir["grantId"], "other_kind")
    assert other_kind["violation"].startswith("term 'protocols'")
    assert [c["term"] for c in other_kind["terms"] if not c["kept"]] == ["protocols"]

    bank_a = running.register("bank-a")  # no grant at all: the default terms of a PSI grant
    task_a = submit(running, telecom, bank_a)
    with running.client("bank-a", "data_owner") as owner:
        shown_a = owner.get(f"/approvals/{task_a['taskId']}/{bank_a}")
        assert shown_a.status_code == 200, shown_a.text
        (default,) = shown_a.json()["reviews"]
        assert (
            owner.post(
                f"/approvals/{task_a['taskId']}/{bank_a}", json={"decision": "reject"}
            ).json()["status"]
            == "rejected"
        )
    assert (default["source"], default["grantId"], default["violation"]) == ("default", None, None)
    assert all(check["kept"] for check in default["terms"])

    decided = decide(running, task["taskId"], bank, "approve")
    assert decided.status_code == 200, decided.text
    assert (decided.json()["status"], decided.json()["specStatus"]) == ("approved", None)
    with running.client("telecom", "operator") as client:
        assert wait_status(client, task["taskId"], {"settled", "failed"})["status"] == "settled"


def test_a_requester_node_that_is_down_leaves_the_chain_facts_and_no_approval(
    running: Running,
) -> None:
    telecom, bank = running.register("telecom"), running.register("bank-b")
    task = submit(running, telecom, bank)
    requester = running.nodes["telecom"]
    requester.kill()
    with restarted_after(requester):
        shown = approval(running, task["taskId"], bank)
        assert (shown["status"], shown["specStatus"]) == ("pending", "unreachable")
        assert "cannot fetch the spec" in shown["specMessage"]
        assert (shown["protocol"], shown["feeWei"], shown["requesterOrg"]) == (
            "ecdh",
            FEE,
            running.org_ids["telecom"],
        )
        assert (shown["request"], shown["reviews"]) == (None, [])
        refused = decide(running, task["taskId"], bank, "approve")
        assert refused.status_code == 502, refused.text
        assert refused.json()["error"]["code"] == "requester_unreachable"
        assert approval(running, task["taskId"], bank)["status"] == "pending"
    assert approval(running, task["taskId"], bank)["specStatus"] == "verified"  # back up
    assert decide(running, task["taskId"], bank, "reject").json()["status"] == "rejected"


def test_a_forged_spec_is_shown_as_such_and_cannot_be_approved(running: Running) -> None:
    telecom, bank = running.register("telecom"), running.register("bank-b")
    task = submit(running, telecom, bank)
    forge_spec(running, task["taskId"])
    shown = approval(running, task["taskId"], bank)
    assert (shown["status"], shown["specStatus"]) == ("pending", "mismatch")
    assert shown["specMessage"] == "the spec does not match its hash on chain"
    assert (shown["protocol"], shown["feeWei"], shown["request"]) == ("ecdh", FEE, None)
    refused = decide(running, task["taskId"], bank, "approve")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "spec_mismatch"
    assert approval(running, task["taskId"], bank)["status"] == "pending"
    assert decide(running, task["taskId"], bank, "reject").json()["status"] == "rejected"
