"""Projects and the workflow around them, between real nodes: an invitation goes through the
inboxes, members add datasets, a PSI task tagged with the project runs and settles, and an
organisation outside the project sees nothing of it."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import Running
from .test_walking_path import FEE, grant, wait_status


def psi_body(project: int, mine: str, theirs: str) -> dict[str, Any]:
    return {
        "inputs": [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}],
        "feeWei": FEE,
        "project": project,
    }


def pending(client: httpx.Client, kind: str, **match: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/workflow/inbox").json()
    return [
        item
        for item in items
        if item["kind"] == kind and all(item[key] == value for key, value in match.items())
    ]


def test_project_from_invitation_to_a_settled_task(running: Running) -> None:
    bank_id, telecom_id = running.org_ids["bank-a"], running.org_ids["telecom"]
    with running.client("bank-a", "operator") as bank:
        created = bank.post("/projects", json={"name": "fraud-pilot"})
        assert created.status_code == 201, created.text
        project = created.json()
        project_id = project["projectId"]
        assert project["members"] == [
            {"orgId": bank_id, "name": "bank-a", "status": "member", "owner": True}
        ]
        invited = bank.post(f"/projects/{project_id}/invitations", json={"org": telecom_id})
        assert invited.status_code == 201, invited.text
        assert {m["orgId"]: m["status"] for m in invited.json()["members"]} == {
            bank_id: "member",
            telecom_id: "invited",
        }

    with running.client("telecom", "operator") as telecom:
        [invitation] = pending(telecom, "project_invitation", projectId=project_id)
        assert (invitation["fromOrg"], invitation["toOrg"]) == (bank_id, telecom_id)
        assert invitation["projectName"] == "fraud-pilot"
        listed = {p["projectId"]: p["myStatus"] for p in telecom.get("/projects").json()}
        assert listed[project_id] == "invited"
        accepted = telecom.post(f"/projects/{project_id}/invitation", json={"decision": "accept"})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["myStatus"] == "member"
        assert not pending(telecom, "project_invitation", projectId=project_id)
        again = telecom.post(f"/projects/{project_id}/invitation", json={"decision": "accept"})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "ProjectRegistryNotInvited"
    with running.client("bank-a", "operator") as bank:
        sent = [
            item
            for item in bank.get("/workflow/outbox").json()
            if item["kind"] == "project_invitation" and item["projectId"] == project_id
        ]
        assert [item["status"] for item in sent] == ["accepted"]

    telecom_data, bank_data = running.register("telecom"), running.register("bank-a")
    outside = running.register("bank-a")  # bank-a's, never added to the project
    for org, dataset in (("telecom", telecom_data), ("bank-a", bank_data)):
        with running.client(org, "data_owner") as owner:
            added = owner.post(f"/projects/{project_id}/datasets", json={"dataset": dataset})
            assert added.status_code == 201, added.text
    with running.client("telecom", "data_owner") as owner:
        foreign = owner.post(f"/projects/{project_id}/datasets", json={"dataset": outside})
        assert foreign.status_code == 409
        assert foreign.json()["error"]["code"] == "ProjectRegistryUnauthorized"

    grant(running, "bank-a", bank_data, "telecom")
    with running.client("telecom", "operator") as telecom:
        refused = telecom.post("/tasks", json=psi_body(project_id, telecom_data, outside))
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "invalid_project"
        assert "not in project" in refused.json()["error"]["message"]

        submitted = telecom.post("/tasks", json=psi_body(project_id, telecom_data, bank_data))
        assert submitted.status_code == 201, submitted.text
        task_id = submitted.json()["taskId"]
        final = wait_status(telecom, task_id, {"settled", "failed"})
        assert final["status"] == "settled", final
        result = telecom.get(f"/tasks/{task_id}/result").json()
        assert len(result["items"]) == len(running.people["telecom"] & running.people["bank-a"])

        shown = telecom.get(f"/projects/{project_id}").json()
        assert {d["datasetId"]: d["ownerOrg"] for d in shown["datasets"]} == {
            telecom_data: telecom_id,
            bank_data: bank_id,
        }
        [tagged] = shown["tasks"]
        assert (tagged["taskId"], tagged["status"], tagged["protocol"]) == (
            task_id,
            "settled",
            "ecdh",
        )
    with running.client("bank-a", "operator") as bank:  # the provider holds the spec too
        assert [t["taskId"] for t in bank.get(f"/projects/{project_id}").json()["tasks"]] == [
            task_id
        ]

    # bank-b is no member: the project does not exist for it
    with running.client("bank-b", "operator") as outsider:
        assert outsider.get(f"/projects/{project_id}").status_code == 404
        assert project_id not in [p["projectId"] for p in outsider.get("/projects").json()]
        for box in ("inbox", "outbox"):
            assert all(
                item["projectId"] != project_id for item in outsider.get(f"/workflow/{box}").json()
            )
        invite = outsider.post(f"/projects/{project_id}/invitations", json={"org": 1})
        assert invite.status_code == 404
        assert invite.json()["error"]["code"] == "not_found"
        assert outsider.post(f"/projects/{project_id}/close").status_code == 404
        bank_b_data = running.register("bank-b")
        task = outsider.post("/tasks", json=psi_body(project_id, bank_b_data, bank_data))
        assert task.status_code == 404
    with running.client("bank-b", "data_owner") as owner:
        joined = owner.post(f"/projects/{project_id}/datasets", json={"dataset": bank_b_data})
        assert joined.status_code == 404


def test_task_approvals_and_membership_endings_pass_through_the_workflow(
    running: Running,
) -> None:
    bank_id, telecom_id = running.org_ids["bank-a"], running.org_ids["telecom"]
    with running.client("bank-a", "operator") as bank:
        project_id = bank.post("/projects", json={"name": "approvals"}).json()["projectId"]
        bank.post(f"/projects/{project_id}/invitations", json={"org": telecom_id})
    with running.client("telecom", "operator") as telecom:
        telecom.post(f"/projects/{project_id}/invitation", json={"decision": "accept"})
    telecom_data, bank_data = running.register("telecom"), running.register("bank-a")
    for org, dataset in (("telecom", telecom_data), ("bank-a", bank_data)):
        with running.client(org, "data_owner") as owner:
            owner.post(f"/projects/{project_id}/datasets", json={"dataset": dataset})

    # no grant: the task waits for bank-a's decision, in bank-a's inbox and the telecom's outbox
    with running.client("telecom", "operator") as telecom:
        submitted = telecom.post("/tasks", json=psi_body(project_id, telecom_data, bank_data))
        assert submitted.status_code == 201, submitted.text
        task_id = submitted.json()["taskId"]
        assert submitted.json()["status"] == "submitted"
    with running.client("bank-a", "data_owner") as owner:
        [request] = pending(owner, "task_approval", taskId=task_id)
        assert (request["fromOrg"], request["toOrg"], request["dataset"]) == (
            telecom_id,
            bank_id,
            bank_data,
        )
        decided = owner.post(f"/approvals/{task_id}/{bank_data}", json={"decision": "reject"})
        assert decided.status_code == 200, decided.text
        assert not pending(owner, "task_approval", taskId=task_id)
    with running.client("telecom", "operator") as telecom:
        asked = [i for i in telecom.get("/workflow/outbox").json() if i["taskId"] == task_id]
        assert [item["status"] for item in asked] == ["rejected"]
        assert wait_status(telecom, task_id, {"failed"})["status"] == "failed"

        # the telecom leaves: its dataset leaves with it, and the project is gone from its view
        left = telecom.delete(f"/projects/{project_id}/members/{telecom_id}")
        assert left.status_code == 204, left.text
        assert telecom.get(f"/projects/{project_id}").status_code == 404
    with running.client("bank-a", "operator") as bank:
        shown = bank.get(f"/projects/{project_id}").json()
        assert [m["orgId"] for m in shown["members"]] == [bank_id]
        assert [d["datasetId"] for d in shown["datasets"]] == [bank_data]
        owner_leaves = bank.delete(f"/projects/{project_id}/members/{bank_id}")
        assert owner_leaves.status_code == 409
        assert owner_leaves.json()["error"]["code"] == "ProjectRegistryOwnerOrg"

        # an invitation still open when the project closes is closed with it
        bank.post(f"/projects/{project_id}/invitations", json={"org": telecom_id})
        closed = bank.post(f"/projects/{project_id}/close")
        assert closed.status_code == 200 and closed.json()["status"] == "closed"
        sent = [i for i in bank.get("/workflow/outbox").json() if i["projectId"] == project_id]
        assert [item["status"] for item in sent] == ["closed", "accepted"]
    with running.client("telecom", "operator") as telecom:
        assert not pending(telecom, "project_invitation", projectId=project_id)
        refused = telecom.post("/tasks", json=psi_body(project_id, telecom_data, bank_data))
        assert refused.status_code == 400
