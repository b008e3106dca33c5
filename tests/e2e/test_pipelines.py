"""Pipelines between node processes (issue 22, item 4): the two example job files of
docs/examples run end to end -- PSI alignment then joint statistics on the aligned rows, from the
command line, with a step that fails and is resumed without rerunning the settled one; and PSI
alignment, vertical training, model registration and joint prediction through the SDK. The
partner's aligned rows become a derived dataset only as its owner's grant consents; the explorer
draws each job's DAG with every step's state."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from privledger.evm.accounts import dev_account
from privledger.node.peer_auth import PEER_SCHEME, signed_headers
from privledger.node.terms import GrantTerms
from privledger.sdk import NodeClient
from privledger.sdk.pipeline import run_pipeline
from privledger.wire.pipelines import JobIn

from .conftest import Running
from .test_explorer import login
from .test_query_cli import register
from .test_walking_path import FEE, grant

pytestmark = pytest.mark.pipeline

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
REGULATOR = 4  # dev account of the regulator, an auditor
POLICE_OPERATOR = 6  # dev account holding the police's operator role


def _phones(count: int) -> list[str]:
    return [f"+86{secrets.randbelow(10**11):011d}" for _ in range(count)]


def _cli(running: Running, org: str, *args: str) -> subprocess.CompletedProcess[str]:
    node = running.nodes[org]
    env = {
        **os.environ,
        "PRIVLEDGER_NODE_URL": node.url,
        "PRIVLEDGER_TOKEN": node.tokens["operator"],
        "PRIVLEDGER_OWNER_TOKEN": node.tokens["data_owner"],
    }
    return subprocess.run(
        [sys.executable, "-m", "privledger.cli", "--output", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def _client(running: Running, org: str, role: str) -> NodeClient:
    node = running.nodes[org]
    return NodeClient(node.url, node.tokens[role], timeout_s=120)


def _terms(running: Running, grant_id: str, owner: str) -> GrantTerms:
    with running.client(owner, "data_owner") as client:
        record = client.get(f"/grants/{grant_id}").json()
    return GrantTerms.model_validate(record["terms"])


def test_aligned_statistics_from_the_command_line_with_a_failed_step_resumed(
    running: Running,
) -> None:
    shared, only_telecom, only_bank = _phones(30), _phones(11), _phones(7)
    spend = {phone: 20 + index for index, phone in enumerate(shared + only_telecom)}
    loans = {phone: 500 + 3 * index for index, phone in enumerate(shared + only_bank)}
    mine = register(
        running, "telecom", "p-spend", "phone,spend", [f"{k},{v}" for k, v in spend.items()]
    )
    theirs = register(
        running, "bank-a", "p-loans", "phone,loan", [f"{k},{v}" for k, v in loans.items()]
    )
    terms = {
        "protocols": ["kkrt", "joint-stats"],
        "columns": {"phone": ["join"], "loan": ["aggregate"]},
        "outputs": ["requester", "both"],
        "derive": {"upstreamBps": 1_500},
    }
    parent = grant(running, "bank-a", theirs, "telecom", kinds=[], terms=terms)
    example = str(EXAMPLES / "aligned-statistics.json")
    given = [
        f"mine={mine}",
        f"theirs={theirs}",
        "myValue=spend",
        "theirValue=loan",
        f"feeWei={FEE}",
        f"dealer={running.org_ids['bank-a']}",  # holds an input: the statistics step is refused
    ]
    failed = _cli(running, "telecom", "pipeline", "run", example, *[f"--var={v}" for v in given])
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "align submitted" in failed.stderr and "align settled" in failed.stderr
    assert "align derived" in failed.stderr and "statistics failed" in failed.stderr
    found = re.search(r"pipeline (\d+), step statistics", failed.stdout + failed.stderr)
    assert found, failed.stdout + failed.stderr
    pipeline_id = int(found.group(1))

    with _client(running, "telecom", "operator") as operator:
        before = operator.pipeline(pipeline_id)
    assert before.state == "failed"
    align, statistics = before.steps
    assert (align.state, statistics.state, statistics.task_id) == ("settled", "failed", None)
    assert statistics.error and "dealer" in statistics.error
    assert before.job["vars"]["mine"] == mine  # the record says what ran
    by_org = {item.org: item for item in align.derived}
    assert set(by_org) == {"telecom", "bank-a"}
    assert by_org["telecom"].row_count == by_org["bank-a"].row_count == len(shared)
    assert by_org["telecom"].grant_id is None and by_org["bank-a"].grant_id is not None

    # the partner's derived dataset: parents on chain, granted on under the parent's terms
    chain = running.ledger(0).data
    record = chain.get_dataset(bytes.fromhex(by_org["bank-a"].dataset_id[2:]))
    assert sorted(record.parents) == sorted(bytes.fromhex(d[2:]) for d in (mine, theirs))
    assert record.upstream_bps == 1_500 and record.owner_org == running.org_ids["bank-a"]
    inherited = _terms(running, by_org["bank-a"].grant_id, "bank-a")
    assert inherited == _terms(running, parent["grantId"], "bank-a").model_copy(
        update={"derive": None, "parent_grant": parent["grantId"]}
    )

    regulator = running.org_ids["regulator"]
    resumed = _cli(
        running, "telecom", "pipeline", "resume", str(pipeline_id), f"--var=dealer={regulator}"
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "align skipped" in resumed.stderr and "statistics submitted" in resumed.stderr
    with _client(running, "telecom", "operator") as operator:
        after = operator.pipeline(pipeline_id)
        result = operator.result(after.steps[1].task_id or 0)
    assert after.state == "done"
    assert after.steps[0].task_id == align.task_id and after.steps[0].attempts == 1
    assert after.steps[1].state == "settled" and after.steps[1].attempts == 1
    answer = json.loads(result.items[0])
    aligned = [spend[p] for p in shared] + [loans[p] for p in shared]
    assert answer["count"] == len(aligned) and answer["sum"] == pytest.approx(sum(aligned))

    # asking again answers the same datasets; the derived rows were registered once
    with _client(running, "telecom", "data_owner") as owner:
        again = owner.derive_task(align.task_id or 0, upstream_bps=1_500)
    assert {item.dataset_id for item in again} == {d.dataset_id for d in align.derived}

    # the auditor's explorer draws the DAG with each step's state
    with httpx.Client(base_url=running.nodes["telecom"].url, timeout=60) as explorer:
        assert login(explorer, dev_account(REGULATOR)).status_code == 200
        page = explorer.get(f"/explorer/pipelines/{pipeline_id}")
        assert page.status_code == 200, page.text
        assert 'aria-label="pipeline DAG"' in page.text and "statistics" in page.text
        twin = explorer.get(f"/explorer/api/pipelines/{pipeline_id}").json()
        listing = explorer.get("/explorer/pipelines")
    nodes = {node["key"]: node for node in twin["graph"]["nodes"]}
    assert nodes["align"]["state"] == nodes["statistics"]["state"] == "settled"
    edges = {(edge["source"], edge["target"]) for edge in twin["graph"]["edges"]}
    assert ("align", "statistics") in edges and len(nodes) == 4  # two steps, two datasets
    assert f"/pipelines/{pipeline_id}" in listing.text


@pytest.mark.security
def test_only_the_requester_with_the_owner_s_consent_gets_a_partner_s_derived_rows(
    running: Running,
) -> None:
    phones = _phones(25)
    mine = register(running, "telecom", "q-mine", "phone", phones)
    theirs = register(running, "bank-b", "q-theirs", "phone", phones[:20] + _phones(5))
    plain = {"protocols": ["kkrt"], "columns": {"phone": ["join"]}, "outputs": ["both"]}
    grant(running, "bank-b", theirs, "telecom", kinds=[], terms=plain)  # no derive
    body = {
        "kind": "psi",
        "protocol": "kkrt",
        "inputs": [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}],
        "output": "both",
        "feeWei": FEE,
    }
    with _client(running, "telecom", "operator") as operator:
        task = operator.settled(operator.submit(body).task_id, timeout_s=180)
    with running.client("telecom", "data_owner") as owner:  # the grant does not consent
        refused = owner.post(f"/tasks/{task.task_id}/derived", json={})
    assert refused.status_code == 409, refused.text
    assert "allows no derived use" in refused.json()["error"]["message"]

    # another organisation's node (the police's operator, in no part of the task) is refused
    bank_b = running.nodes["bank-b"]
    route = f"/api/v1/peer/tasks/{task.task_id}/derived"
    police = running.org_ids["police"]
    headers = signed_headers(
        dev_account(POLICE_OPERATOR), PEER_SCHEME, route, police, running.org_ids["bank-b"], b""
    )
    with httpx.Client(base_url=bank_b.url, timeout=60) as client:
        stranger = client.post(route, headers=headers)
        unsigned = client.post(route)
    assert stranger.status_code == 403, stranger.text
    assert unsigned.status_code == 401, unsigned.text
    with _client(running, "bank-b", "data_owner") as owner:
        assert not [d for d in owner.datasets() if d.name.startswith("q-theirs.t")]
    assert bank_b.process.poll() is None


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")


def test_the_fraud_model_pipeline_aligns_trains_registers_and_predicts(running: Running) -> None:
    rng = np.random.default_rng(22)
    tag = secrets.token_hex(3)
    n, features = 240, ["f0", "f1", "f2"]
    x = rng.normal(size=(n, 3))
    y = (x @ np.array([2.0, -1.5, 1.0]) + rng.normal(scale=0.5, size=n) > 0.3).astype(int)
    ids = [f"+4479{tag}{i:04d}" for i in range(n)]
    labelled = range(0, 200)  # the police checked these numbers
    subscribed = range(40, n)  # the carrier's subscribers
    data = running.data_dir
    _write(data / f"pl-{tag}.csv", ["phone", "fraud"], [[ids[i], str(y[i])] for i in labelled])
    rows = [[ids[i], *(f"{v:.6f}" for v in x[i])] for i in subscribed]
    _write(data / f"ps-{tag}.csv", ["phone", *features], rows)
    current = [[ids[i], *(f"{v + 0.05:.6f}" for v in x[i])] for i in subscribed]
    _write(data / f"pc-{tag}.csv", ["phone", *features], current)
    with _client(running, "police", "data_owner") as owner:
        labels = owner.register_file(
            data / f"pl-{tag}.csv", f"pl-{tag}", level=2, unit_price=10**12
        )
    with _client(running, "telecom", "data_owner") as owner:
        past = owner.register_file(data / f"ps-{tag}.csv", f"ps-{tag}", level=2, unit_price=10**12)
        now = owner.register_file(data / f"pc-{tag}.csv", f"pc-{tag}", level=2, unit_price=10**12)
    columns = {"phone": ["join"], **{f: ["aggregate"] for f in features}}
    training_terms = {
        "protocols": ["kkrt", "vertical-lr"],
        "columns": columns,
        "outputs": ["requester", "both"],
        "derive": {},
    }
    grant(running, "telecom", past.dataset_id, "police", kinds=[], terms=training_terms)
    predict_terms = {"protocols": ["vertical-predict"], "columns": columns, "outputs": ["ids"]}
    grant(running, "telecom", now.dataset_id, "police", kinds=[], terms=predict_terms)

    job = JobIn.model_validate_json((EXAMPLES / "fraud-model.json").read_bytes())
    seen: list[tuple[str, str]] = []
    with (
        _client(running, "police", "operator") as operator,
        _client(running, "police", "data_owner") as owner,
    ):
        done = run_pipeline(
            operator,
            job,
            owner=owner,
            variables={
                "labels": labels.dataset_id,
                "subscribers": past.dataset_id,
                "current": now.dataset_id,
                "features": features,
                "dealer": running.org_ids["regulator"],
                "modelName": f"fraud-{tag}",
                "feeWei": FEE,
            },
            progress=lambda step, phase, line: seen.append((step, phase)),
            timeout_s=300,
        )
        align, train, model, predict = done.steps
        training = operator.task(train.task_id or 0)
        flagged = operator.result(predict.task_id or 0).items
        registered = owner.model(f"fraud-{tag}")
    assert done.state == "done" and [s.state for s in done.steps] == [
        "settled",
        "settled",
        "done",
        "settled",
    ]
    assert ("model", "registered") in seen and ("predict", "submitted") in seen
    derived = {item.org: item.dataset_id for item in align.derived}
    assert derived["police"] != labels.dataset_id and len(align.derived) == 2
    assert {item.row_count for item in align.derived} == {160}  # ids 40..199
    assert sorted(training.inputs) == sorted(derived.values())  # trained on the aligned rows
    assert registered.model_id == model.model_id
    assert sorted(registered.parents) == sorted(derived.values())
    assert flagged and set(flagged) <= {ids[i] for i in subscribed}
    truth = {ids[i] for i in subscribed if y[i]}
    assert len(set(flagged) & truth) / len(flagged) > 0.7  # the model flags fraud, not noise

    # the police's explorer draws the four steps in a chain, the aligned datasets after align
    with httpx.Client(base_url=running.nodes["police"].url, timeout=60) as explorer:
        assert login(explorer, dev_account(REGULATOR)).status_code == 200
        page = explorer.get(f"/explorer/pipelines/{done.pipeline_id}")
        twin = explorer.get(f"/explorer/api/pipelines/{done.pipeline_id}").json()
    assert page.status_code == 200 and 'aria-label="pipeline DAG"' in page.text
    edges = {(edge["source"], edge["target"]) for edge in twin["graph"]["edges"]}
    assert {("align", "train"), ("train", "model"), ("model", "predict")} <= edges
    states = {node["key"]: node["state"] for node in twin["graph"]["nodes"]}
    assert states["model"] == "done" and states["predict"] == "settled"


def test_independent_steps_run_at_once_and_a_joining_step_after_both(running: Running) -> None:
    """Two PSI steps with different banks wait for nothing: both are submitted before either
    settles; a third waits for both and starts only when both settled. Every step's report is
    kept although two arrive at once."""
    phones = _phones(40)
    mine = register(running, "telecom", "w-mine", "phone", phones)
    plain = {"protocols": ["kkrt"], "columns": {"phone": ["join"]}, "outputs": ["both"]}
    theirs: dict[str, str] = {}
    for bank in ("bank-a", "bank-b"):
        theirs[bank] = register(running, bank, "w-theirs", "phone", phones[:30] + _phones(5))
        grant(running, bank, theirs[bank], "telecom", kinds=[], terms=plain, maxUses=2)

    def psi(bank: str) -> dict[str, Any]:
        inputs = [
            {"dataset": mine, "column": "phone"},
            {"dataset": theirs[bank], "column": "phone"},
        ]
        return {
            "kind": "psi",
            "protocol": "kkrt",
            "inputs": inputs,
            "output": "both",
            "feeWei": FEE,
        }

    steps = [
        {"id": "with-a", "task": psi("bank-a")},
        {"id": "with-b", "task": psi("bank-b")},
        {"id": "again", "after": ["with-a", "with-b"], "task": psi("bank-a")},
    ]
    seen: list[tuple[str, str]] = []
    with _client(running, "telecom", "operator") as operator:
        done = run_pipeline(
            operator,
            JobIn.model_validate({"name": "wide", "steps": steps}),
            progress=lambda step, phase, line: seen.append((step, phase)),
            timeout_s=300,
        )
    assert done.state == "done", done
    assert [(s.id, s.state, s.attempts) for s in done.steps] == [
        ("with-a", "settled", 1),
        ("with-b", "settled", 1),
        ("again", "settled", 1),
    ]
    first_settled = min(seen.index((step, "settled")) for step in ("with-a", "with-b"))
    assert seen.index(("with-a", "submitted")) < first_settled, seen
    assert seen.index(("with-b", "submitted")) < first_settled, seen
    both_settled = max(seen.index((step, "settled")) for step in ("with-a", "with-b"))
    assert seen.index(("again", "submitted")) > both_settled, seen
