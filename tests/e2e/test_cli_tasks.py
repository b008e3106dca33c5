"""The command line as an analyst uses it against real nodes: register, grant, submit, result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import Running


def cli(running: Running, org: str, role: str, *args: str) -> subprocess.CompletedProcess[str]:
    node = running.nodes[org]
    env = {**os.environ, "PRIVLEDGER_NODE_URL": node.url, "PRIVLEDGER_TOKEN": node.tokens[role]}
    return subprocess.run(
        [sys.executable, "-m", "privledger.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_register_grant_submit_and_fetch_from_the_command_line(
    running: Running, tmp_path: Path
) -> None:
    bank = ok(
        cli(
            running,
            "bank-b",
            "data_owner",
            "dataset",
            "register",  # uploaded from the analyst's machine
            str(running.data_dir / "bank-b.csv"),
            "--name",
            "cli-bank",
            "--level",
            "2",
            "--unit-price",
            "1000",
        )
    )
    mine = ok(
        cli(
            running,
            "telecom",
            "data_owner",
            "dataset",
            "register",
            "--on-node",  # a file already in its import directory on the node
            "telecom.csv",
            "--name",
            "cli-telecom",
            "--level",
            "2",
        )
    )
    grant = ok(
        cli(
            running,
            "bank-b",
            "data_owner",
            "grant",
            "issue",
            bank["datasetId"],
            "--grantee",
            str(running.org_ids["telecom"]),
            "--kind",
            "psi",
            "--uses",
            "2",
        )
    )
    assert grant["kinds"] == ["psi"] and grant["maxUses"] == 2

    spec = tmp_path / "task.json"
    spec.write_text(
        json.dumps(
            {
                "protocol": "kkrt",
                "inputs": [
                    {"dataset": mine["datasetId"], "column": "phone"},
                    {"dataset": bank["datasetId"], "column": "phone"},
                ],
                "feeWei": 10**15,
            }
        )
    )
    task = ok(cli(running, "telecom", "operator", "task", "submit", str(spec)))
    assert task["status"] == "settled"
    result = ok(cli(running, "telecom", "operator", "task", "result", str(task["taskId"])))
    assert set(result["items"]) == running.people["telecom"] & running.people["bank-b"]
    status = ok(cli(running, "telecom", "operator", "task", "status", str(task["taskId"])))
    assert status["taskId"] == task["taskId"]

    revoked = ok(cli(running, "bank-b", "data_owner", "grant", "revoke", grant["grantId"]))
    assert revoked["revoked"] is True


def test_command_line_errors_are_messages_not_tracebacks(running: Running, tmp_path: Path) -> None:
    wrong_role = cli(
        running,
        "telecom",
        "operator",
        "dataset",
        "register",
        str(running.data_dir / "telecom.csv"),
        "--name",
        "x",
        "--level",
        "1",
    )
    assert wrong_role.returncode == 1 and "403 forbidden" in wrong_role.stderr
    assert "Traceback" not in wrong_role.stderr
    missing = cli(running, "telecom", "operator", "task", "submit", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    unknown = cli(running, "telecom", "operator", "task", "status", "999999")
    assert unknown.returncode == 1 and "404" in unknown.stderr
