"""How the command line prints (issue 17, item 3; issue 23, item 7): tables for people, JSON for
programs, errors in either with a non-zero exit code; every choice an Enum that ``--help`` lists;
settings from the environment; a fast start. The node's answers come from the SDK's client,
whose calls are replaced here by records shaped as the API sends them (the commands against real
nodes: tests/e2e/test_cli_tasks.py, test_query_cli.py, test_cli_onboarding.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from privledger.api import server
from privledger.cli import app
from privledger.cli.progress import following, phase
from privledger.config import NodeSettings
from privledger.sdk import Forbidden, NodeClient, TaskFailed
from privledger.wire.approvals import ApprovalOut
from privledger.wire.assets import DatasetOut
from privledger.wire.tasks import TaskOut, TaskResult

URL = "http://127.0.0.1:9"  # nothing is sent there: the client's calls are replaced
DATASET = {
    "datasetId": "0x" + "11" * 32,
    "name": "customers",
    "columns": ["phone", "segment"],
    "rowCount": 1000,
    "level": 2,
    "unitPrice": 5,
    "schemaHash": "0x" + "22" * 32,
    "commitment": "0x" + "33" * 32,
    "retired": False,
}
TASK: dict[str, Any] = {
    "taskId": 7,
    "status": "running",
    "kind": "psi",
    "specHash": "0x" + "44" * 32,
    "requesterOrg": 3,
    "participants": [3, 1],
    "inputs": ["0x" + "11" * 32],
    "fee": 10**15,
    "deadline": 1_767_225_600,  # 2026-01-01T00:00:00Z
    "failureReason": 0,
    "localState": "running",
    "localFailure": None,
    "localProtocolSeconds": None,
    "localBytesSent": 2_500_000,
    "localResources": None,
    "timeline": [
        {
            "blockNumber": 5,
            "txHash": "0x" + "55" * 32,
            "contract": "TaskLedger",
            "event": "TaskSubmitted",
            "args": {"taskId": 7, "kind": 1, "deadline": 1_767_225_600},
        },
        {
            "blockNumber": 6,
            "txHash": "0x" + "66" * 32,
            "contract": "TaskLedger",
            "event": "ResultAnchored",
            "args": {"taskId": 7, "org": 3},
        },
    ],
}


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NodeClient, "datasets", lambda self: [DatasetOut.model_validate(DATASET)])
    monkeypatch.setattr(
        NodeClient,
        "task",
        lambda self, task_id: TaskOut.model_validate({**TASK, "taskId": task_id}),
    )


def test_json_when_piped_or_asked_a_table_when_asked(node: None) -> None:
    piped = invoke("dataset", "list", "--url", URL)  # stdout is not a terminal: JSON
    assert piped.exit_code == 0, piped.stderr
    assert json.loads(piped.stdout) == [DATASET]
    for args in (["--output", "json", "dataset", "list"], ["dataset", "list", "--json"]):
        assert json.loads(invoke(*args, "--url", URL).stdout) == [DATASET], args
    assert json.loads(invoke("dataset", "list", env={"PRIVLEDGER_OUTPUT": "json"}).stdout)

    for shown in (
        invoke("-o", "table", "dataset", "list", "--url", URL),
        invoke("dataset", "list", "--url", URL, env={"PRIVLEDGER_OUTPUT": "table"}),
    ):
        assert shown.exit_code == 0, shown.stderr
        header, row = (line for line in shown.stdout.splitlines() if "│" in line or "┃" in line)
        assert re.split(r"\s*[┃│]\s*", header.strip("┃ "))[:3] == ["datasetId", "name", "level"]
        assert DATASET["datasetId"] in row and "customers" in row and "phone, segment" in row
        assert "commitment" not in shown.stdout  # a list shows the columns that matter


def test_a_table_says_names_and_times_where_the_api_sends_numbers(node: None) -> None:
    shown = invoke("-o", "table", "task", "status", "7", "--url", URL)
    assert shown.exit_code == 0, shown.stderr
    fields = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1)
        for line in shown.stdout.splitlines()
        if re.match(r"^[a-zA-Z]+\s{2,}\S", line)
    )
    assert fields["phase"] == "running, 1/2 anchored, 2.5 MB sent"
    assert fields["deadline"] == "2026-01-01T00:00:00+00:00"
    assert fields["failureReason"] == "-" and fields["participants"] == "3, 1"
    assert "timeline" in shown.stdout and "kind: psi" in shown.stdout  # kind 1 in the event
    raw = json.loads(invoke("task", "status", "7", "--url", URL).stdout)
    assert raw == TASK  # JSON is the API's own: numbers stay numbers


def test_errors_are_json_with_json_output_and_exit_non_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unreachable = invoke("-o", "json", "dataset", "list", "--url", URL)
    assert unreachable.exit_code == 1
    error = json.loads(unreachable.stdout)["error"]
    assert error["code"] == "unreachable" and "PRIVLEDGER_NODE_URL" in error["message"]
    assert "cannot reach" in unreachable.stderr  # and the message for the person, on stderr

    def refused(self: NodeClient) -> None:
        raise Forbidden(403, "forbidden", "the token's role is operator, not data_owner")

    monkeypatch.setattr(NodeClient, "datasets", refused)
    forbidden = invoke("dataset", "list", "--json", "--url", URL)
    assert forbidden.exit_code == 1
    assert json.loads(forbidden.stdout)["error"]["code"] == "forbidden"
    as_table = invoke("-o", "table", "dataset", "list", "--url", URL)
    assert as_table.exit_code == 1 and as_table.stdout == "" and "403 forbidden" in as_table.stderr

    failed = {**TASK, "status": "failed", "failureReason": 6, "localFailure": "PEER_UNREACHABLE"}

    def failing(self: NodeClient, task_id: int) -> None:
        raise TaskFailed(TaskOut.model_validate(failed))

    monkeypatch.setattr(NodeClient, "task", failing)
    task = invoke("--output", "json", "task", "status", "7", "--url", URL)
    printed = json.loads(task.stdout)
    assert task.exit_code == 1 and printed["error"]["code"] == "task_failed"
    assert (printed["taskId"], printed["failureReason"]) == (7, "PEER_UNREACHABLE")

    wrong = invoke("-o", "json", "grant", "issue", "0x1", "--grantee", "2", "--kind", "sql")
    assert wrong.exit_code == 2
    usage = json.loads(wrong.stdout)["error"]
    assert (
        usage["code"] == "usage"
        and "'sql' is not one of 'psi', 'pir', 'stats', 'fl'" in (usage["message"])
    )
    missing = invoke("--output", "json", "task", "psi", "--mine", "0x1")
    assert missing.exit_code == 2 and json.loads(missing.stdout)["error"]["code"] == "usage"
    plain = invoke("-o", "table", "grant", "issue", "0x1", "--grantee", "2", "--kind", "sql")
    assert plain.exit_code == 2 and plain.stdout == "" and "'sql'" in plain.stderr


def test_a_table_shows_the_first_items_of_a_long_list(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [json.dumps([f"+86{index:09d}", "gold"]) for index in range(30)]
    result = {
        "taskId": 7,
        "items": items,
        "salt": "0x01",
        "resultDigest": "0x02",
        "transcriptHash": "0x03",
    }
    monkeypatch.setattr(
        NodeClient, "result", lambda self, task_id: TaskResult.model_validate(result)
    )
    shown = invoke("-o", "table", "task", "result", "7", "--url", URL)
    assert shown.exit_code == 0, shown.stderr
    text = re.sub(r"\s+", " ", shown.stdout)
    assert "+86000000000, gold, +86000000001, gold" in text  # the JSON in each item, decoded
    assert "+86000000019" in text and "+86000000020" not in text
    assert "… 10 more (--json prints all)" in text
    assert json.loads(invoke("task", "result", "7", "--url", URL).stdout) == result


def test_approval_show_gives_one_request_term_by_term(monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = "0x" + "77" * 32
    review = {
        "source": "grant",
        "grantId": "0x" + "88" * 32,
        "grantState": "usable",
        "purpose": "",
        "violation": "maxRequesterSet: 5000 rows asked, 1000 allowed",
        "terms": [
            {"term": "protocols", "requested": "ecdh", "allowed": "ecdh, kkrt", "kept": True},
            {"term": "maxRequesterSet", "requested": "5000", "allowed": "1000", "kept": False},
        ],
    }
    approval = {
        "taskId": 8,
        "dataset": dataset,
        "requesterOrg": 3,
        "status": "pending",
        "protocol": "ecdh",
        "feeWei": 0,
        "specStatus": "verified",
        "specMessage": None,
        "request": None,
        "reviews": [review],
    }
    monkeypatch.setattr(
        NodeClient, "approvals", lambda self: [ApprovalOut.model_validate(approval)]
    )
    shown = invoke("-o", "table", "approval", "show", "8", dataset.upper(), "--url", URL)
    assert shown.exit_code == 0, shown.stderr
    assert f"against grant {review['grantId']} (usable); broken: maxRequesterSet" in (
        re.sub(r"\s+", " ", shown.stdout)
    )
    rows = [line for line in shown.stdout.splitlines() if "maxRequesterSet" in line]
    assert any("5000" in row and "1000" in row and " no " in row for row in rows)
    assert json.loads(invoke("approval", "show", "8", dataset, "--url", URL).stdout) == approval
    missing = invoke("-o", "json", "approval", "show", "9", dataset, "--url", URL)
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("command", "choices"),
    [
        ([], "table|json"),
        (["grant", "issue"], "psi|pir|stats|fl"),
        (["consortium", "admit"], "org_admin|data_owner|operator|auditor"),
        (["node", "token"], "org_admin|data_owner|operator|auditor|consortium_admin"),
        (["onboarding", "apply"], "data_owner|operator|auditor"),
        (["onboarding", "list"], "submitted|under_review|approved|rejected"),
        (["task", "psi"], "ecdh|kkrt|rr22"),
        (["task", "psi"], "requester|both|size"),
        (["query", "pir"], "pir|bucket"),
        (["stats", "run"], "count|sum|mean|variance|histogram"),
        (["demo"], "psi|fraud"),
    ],
)
def test_help_lists_every_choice(command: list[str], choices: str) -> None:
    shown = invoke(*command, "--help")
    assert shown.exit_code == 0
    assert choices in re.sub(r"[\s│]", "", shown.stdout), shown.stdout


def test_node_host_takes_its_address_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`node host` (as `node run`, tests/test_cli_node_run.py) reads PRIVLEDGER_HOST, _PORT and
    _PUBLIC_URL unless given on the command line; it used to fix 127.0.0.1:8000."""
    served: list[tuple[list[NodeSettings], str, int]] = []
    monkeypatch.setattr(
        server, "serve_tenants", lambda tenants, host, port: served.append((tenants, host, port))
    )
    env = {"PRIVLEDGER_HOST": "0.0.0.0", "PRIVLEDGER_PORT": "9300"}
    env["PRIVLEDGER_PUBLIC_URL"] = "https://tenants.example"
    tenants = ["--tenant", f"a={tmp_path / 'a'}", "--tenant", f"b={tmp_path / 'b'}"]
    result = invoke("node", "host", *tenants, env=env)
    assert result.exit_code == 0, result.stderr
    (settings, host, port) = served[0]
    assert (host, port) == ("0.0.0.0", 9300)
    assert [s.public_url for s in settings] == [
        "https://tenants.example/t/a",
        "https://tenants.example/t/b",
    ]
    given = invoke("node", "host", *tenants, "--port", "9400", "--public-url", "http://h", env=env)
    assert given.exit_code == 0, given.stderr
    assert served[1][2] == 9400 and served[1][0][0].public_url == "http://h/t/a"


def test_the_rpc_url_comes_from_the_environment() -> None:
    env = {"PRIVLEDGER_RPC_URL": "http://127.0.0.1:9"}
    result = invoke("-o", "json", "deploy", env=env)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["message"] == "no chain answers at http://127.0.0.1:9"


def test_node_identity_prints_what_an_organisation_applies_with(tmp_path: Path) -> None:
    home = str(tmp_path / "insurer")
    created = invoke("node", "init", "--org", "insurer", "--home", home, "--new-key")
    assert created.exit_code == 0, created.stderr
    assert len(created.stdout.splitlines()) == 1  # an administrative step: one line (deploy/*.sh)
    account = json.loads(created.stdout)["account"]
    env = {"PRIVLEDGER_PUBLIC_URL": "https://node.insurer.example:8443"}
    shown = invoke("node", "identity", "--org", "insurer", "--home", home, "--json", env=env)
    assert shown.exit_code == 0, shown.stderr
    identity = json.loads(shown.stdout)
    assert identity["orgName"] == "insurer" and identity["adminAddress"] == account
    assert re.fullmatch(r"0x[0-9a-f]{64}", identity["nodePublicKey"])
    assert identity["nodeEndpoint"] == "https://node.insurer.example:8443"
    again = invoke("node", "identity", "--org", "insurer", "--home", home, "--port", "8443")
    assert json.loads(again.stdout)["nodeEndpoint"] == "http://127.0.0.1:8443"
    assert json.loads(again.stdout)["nodePublicKey"] == identity["nodePublicKey"]
    nowhere = invoke("node", "identity", "--org", "x", "--home", str(tmp_path / "none"), "--json")
    assert nowhere.exit_code == 1 and json.loads(nowhere.stdout)["error"]["code"] == "no_node_home"


def test_waiting_shows_each_phase(capsys: pytest.CaptureFixture[str]) -> None:
    """submitted → authorised → running → anchored → settled: a line at each change (on a
    terminal also a bar through the phases)."""
    records = [
        TaskOut.model_validate({**TASK, "status": status, "timeline": TASK["timeline"][:anchored]})
        for status, anchored in (
            ("submitted", 1),
            ("authorised", 1),
            ("running", 2),
            ("completed", 2),
            ("settled", 2),
        )
    ]
    assert [phase(record)[0] for record in records] == [1, 2, 3, 4, 5]
    assert phase(records[2])[1] == "running, 1/2 anchored, 2.5 MB sent"
    assert phase(TaskOut.model_validate({**TASK, "status": "failed"}))[1].startswith("failed")

    def answer(task_id: int, *, timeout_s: float, progress: Any) -> str:
        for record in records:
            progress(record)
        return "answer"

    assert following(7, 60.0, answer) == "answer"
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].split()[0] for line in lines] == [
        "submitted",
        "authorised",
        "running",
        "completed",
        "settled",
    ]


def test_help_does_not_import_the_heavy_stack() -> None:
    """`privledger --help` and the simple commands start without web3, eth-account, numpy, the
    node or the SDK (they cost seconds): each command imports what it needs when it runs."""
    heavy = ("web3", "eth_account", "numpy", "httpx", "pydantic", "privledger.sdk")
    probe = (
        "import sys; from privledger.cli import app; "
        f"print([name for name in {heavy!r} if name in sys.modules])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
