"""The command line as a user runs it: real processes, real chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from privledger.evm.anvil import free_port

CLI = [sys.executable, "-m", "privledger.cli"]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_everywhere() -> None:
    commands = (
        [],
        ["compile"],
        ["chain", "up"],
        ["deploy"],
        ["demo"],
        ["bench"],
        ["node", "run"],
        ["dataset", "register"],
        ["grant", "issue"],
        ["task", "submit"],
        ["model", "register"],
        ["scenario", "fraud"],
    )
    for command in commands:
        result = run(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout


def test_demo_once_walks_a_psi_task_and_survives_a_restart(tmp_path: Path) -> None:
    env = {
        "PRIVLEDGER_VAR_PATH": str(tmp_path / "var"),
        "PRIVLEDGER_DEPLOYMENTS_PATH": str(tmp_path / "deployments"),
    }
    port = str(free_port())
    first = run("demo", "--once", "--port", port, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["chainId"] == 31337
    assert {org["name"] for org in summary["orgs"]} == {"bank-a", "bank-b", "telecom", "regulator"}
    assert set(summary["nodes"]) == {"bank-a", "bank-b", "telecom", "regulator"}
    scenario = summary["scenario"]
    assert scenario["status"] == "settled"
    assert scenario["intersectionCorrect"] is True
    assert scenario["intersectionSize"] == scenario["plaintextIntersectionSize"] == 700
    assert len(scenario["digests"]) == 2
    assert sum(int(amount) for amount in scenario["settlement"].values()) == scenario["fee"]
    assert (tmp_path / "var" / "chain" / "state.json").is_file()
    # the telecom-fraud vertical FL task: aligned by PSI, a useful model, the telecom paid
    fraud = summary["fraud"]
    assert fraud["status"] == "settled"
    assert fraud["aligned"] == fraud["plaintextAligned"]
    assert fraud["testAuc"] > 0.85
    telecom = str(next(o["orgId"] for o in summary["orgs"] if o["name"] == "telecom"))
    assert fraud["contributions"][telecom] > 0 and int(fraud["settlement"][telecom]) > 0
    assert sum(int(amount) for amount in fraud["settlement"].values()) == fraud["fee"]

    # the chain survives: a second run reuses the deployment, the organisations and the nodes' homes
    second = run("demo", "--once", "--port", port, "--scenario", "psi", env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["contracts"] == summary["contracts"]
    assert again["orgs"] == summary["orgs"]
    assert again["scenario"]["taskId"] == fraud["taskId"] + 1
    assert again["scenario"]["status"] == "settled" and "fraud" not in again
    assert run("demo", "--scenario", "nope").returncode == 2


def test_scenario_data_and_its_task_template(tmp_path: Path) -> None:
    result = run("scenario", "fraud", "--out", str(tmp_path), "--customers", "100")
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert Path(written["bankCsv"]).read_text().startswith("phone,txn_count,")
    assert written["commonPeople"] == 85 and written["task"]["protocol"] == "vertical-lr"


def test_deploy_reports_a_missing_chain() -> None:
    result = run("deploy", "--rpc-url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "no chain answers" in result.stderr


def test_unknown_benchmark_is_a_clear_error() -> None:
    result = run("bench", "nope")
    assert result.returncode == 2
    assert "no benchmark 'nope'" in result.stderr


def test_bad_keys_are_clear_errors(tmp_path: Path) -> None:
    init = run(
        "node",
        "init",
        "--org",
        "x",
        "--home",
        str(tmp_path / "x"),
        env={"PRIVLEDGER_NODE_KEY": "not-a-key"},
    )
    assert init.returncode == 2 and "not a private key" in init.stderr
    assert "Traceback" not in init.stderr
    no_key = run(
        "node", "init", "--org", "x", "--home", str(tmp_path / "x"), env={"PRIVLEDGER_NODE_KEY": ""}
    )
    assert no_key.returncode == 2 and "PRIVLEDGER_NODE_KEY" in no_key.stderr
