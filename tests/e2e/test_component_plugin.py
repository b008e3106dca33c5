"""A third-party component end to end (issue 22, item 3): OpenMined's PSI, packaged separately
(plugins/openmined-psi) and installed into the nodes' environment as a wheel, runs as a ledger
task -- authorised by a grant, anchored, settled -- with no change to the worker, the API or the
contracts; a grant restricted to one component's code hash refuses another."""

from __future__ import annotations

import json
from importlib.metadata import distribution

import httpx
from typer.testing import CliRunner

from privledger.cli import app
from privledger.evm.accounts import dev_account
from privledger.node.components import COMPONENT_PROTOCOL_ID, installed

from .conftest import Running
from .test_explorer import REGULATOR, login
from .test_walking_path import FEE, grant, wait_status


def _body(mine: str, theirs: str, protocol: str) -> dict[str, object]:
    inputs = [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}]
    return {"inputs": inputs, "feeWei": FEE, "protocol": protocol}


def test_the_openmined_plugin_runs_as_a_ledger_task_and_settles(running: Running) -> None:
    plugin = installed()["openmined-psi"]
    assert not plugin.builtin
    assert distribution("privledger-openmined-psi").entry_points  # a wheel of its own
    telecom, bank = running.register("telecom"), running.register("bank-a")
    with running.client("telecom", "operator") as client:
        listed = {c["name"]: c for c in client.get("/components").json()}
    assert listed["openmined.psi"]["hash"] == plugin.ref.hash
    assert listed["openmined.psi"]["protocols"] == ["openmined-psi"]
    assert listed["openmined.psi"]["enforces"] == ["max_requester_set"]
    node = running.nodes["telecom"]
    env = {"PRIVLEDGER_NODE_URL": node.url, "PRIVLEDGER_TOKEN": node.tokens["operator"]}
    shown = CliRunner().invoke(app, ["component", "list", "--json"], env=env)
    assert shown.exit_code == 0, shown.stdout
    by_name = {c["name"]: c for c in json.loads(shown.stdout)}
    assert by_name["openmined.psi"]["hash"] == plugin.ref.hash
    assert by_name["privledger.psi.kkrt"]["builtin"] is True

    kkrt_only = {
        "protocols": ["kkrt", "openmined-psi"],
        "columns": {"phone": ["join"]},
        "components": [installed()["kkrt"].ref.hash],
    }
    grant(running, "bank-a", bank, "telecom", kinds=[], terms=kkrt_only)
    with running.client("telecom", "operator") as client:
        refused = client.post("/tasks", json=_body(telecom, bank, "openmined-psi"))
    assert refused.status_code == 400, refused.text
    assert "term 'components'" in refused.json()["error"]["message"]

    grant(running, "bank-a", bank, "telecom", kinds=[], terms={**kkrt_only, "components": None})
    with running.client("telecom", "operator") as client:
        response = client.post("/tasks", json=_body(telecom, bank, "openmined-psi"))
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        final = wait_status(client, task_id, {"settled", "failed"})
        assert final["status"] == "settled", final
        items = client.get(f"/tasks/{task_id}/result").json()["items"]
    assert sorted(items) == sorted(running.people["telecom"] & running.people["bank-a"])
    ledger = running.ledger(0)
    assert ledger.tasks.get_task(task_id).protocol == COMPONENT_PROTOCOL_ID
    anchored = {anchor.org_id for anchor in ledger.tasks.anchors(task_id)}
    assert anchored == {running.org_ids["telecom"], running.org_ids["bank-a"]}
    # the provider answered every key of the requester's set, and is paid for them
    assert ledger.tasks.units_of(task_id, running.org_ids["bank-a"]) == len(
        running.people["telecom"]
    )

    with httpx.Client(base_url=running.nodes["bank-a"].url, timeout=60) as auditor:
        assert login(auditor, dev_account(REGULATOR)).status_code == 200
        story = auditor.get(f"/explorer/api/tasks/{task_id}").json()
        page = auditor.get(f"/explorer/tasks/{task_id}").text
    assert story["protocol"] == "component"
    assert story["component"] == {
        **plugin.ref.model_dump(),
        "protocol": "openmined-psi",
        "installed_here": True,
    }
    assert "openmined.psi" in page and "installed here at this hash" in page
