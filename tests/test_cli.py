"""The command line as a user runs it: real processes, real chain."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import Result

from privledger.config import DEV_KEYSTORE_PASSWORD, Settings
from privledger.demo import reset_demo
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


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """The command run in this process: the entry point's code without its ~2 s (~5 s loaded) of
    interpreter start-up and imports, for checks that need no process of their own (the entry
    point itself: test_help_everywhere)."""
    from typer.testing import CliRunner

    from privledger.cli import app

    return CliRunner().invoke(app, list(args), env=env)


def _command_paths(group: TyperGroup, prefix: tuple[str, ...] = ()) -> Iterator[list[str]]:
    """Every command and group of the CLI, as the arguments that name it."""
    context = typer.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        yield [*prefix, name]
        if isinstance(command, TyperGroup):
            yield from _command_paths(command, (*prefix, name))


def test_help_everywhere() -> None:
    """``--help`` works for every command: the installed entry point once (a process of its
    own), then each command of the app in this process (the same code, without ~2 s of
    interpreter start-up and imports per command)."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from privledger.cli import app

    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    paths = list(_command_paths(cast(TyperGroup, get_command(app))))
    assert ["task", "template"] in paths and ["node", "run"] in paths and len(paths) > 30
    runner = CliRunner()
    for path in paths:
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, (path, shown.stdout)
        assert "Usage" in shown.stdout, path


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
    orgs = {"bank-a", "bank-b", "telecom", "regulator", "police"}
    assert {org["name"] for org in summary["orgs"]} == orgs and set(summary["nodes"]) == orgs
    scenario = summary["scenario"]
    assert scenario["status"] == "settled"
    assert scenario["intersectionCorrect"] is True
    assert scenario["intersectionSize"] == scenario["plaintextIntersectionSize"] == 700
    assert len(scenario["digests"]) == 2
    assert sum(int(amount) for amount in scenario["settlement"].values()) == scenario["fee"]
    assert (tmp_path / "var" / "chain" / "state.json").is_file()
    # the telecom-fraud story: the police's labels and the telecom's columns trained by vertical
    # FL (the telecom paid), the model registered, a fraud list delivered to the police
    fraud = summary["fraud"]
    assert fraud["status"] == "settled"
    training, prediction = fraud["training"], fraud["prediction"]
    telecom = str(next(o["orgId"] for o in summary["orgs"] if o["name"] == "telecom"))
    assert training["contributions"][telecom] > 0 and int(training["settlement"][telecom]) > 0
    assert sum(int(amount) for amount in training["settlement"].values()) == training["fee"]
    assert len(fraud["model"]["parents"]) == 2
    assert 50 < prediction["fraudListSize"] < 200  # 123 fraudsters among 2,000 subscribers
    assert prediction["precision"] > 0.5 and prediction["recall"] > 0.4

    # the chain survives: a second run reuses the deployment, the organisations, the nodes'
    # homes and their datasets
    second = run("demo", "--once", "--port", port, "--scenario", "psi", env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["contracts"] == summary["contracts"]
    assert again["orgs"] == summary["orgs"]
    assert again["scenario"]["taskId"] == prediction["taskId"] + 1
    assert again["scenario"]["status"] == "settled" and "fraud" not in again
    assert again["scenario"]["datasets"] == scenario["datasets"]  # none registered again
    customers = (tmp_path / "var" / "demo-data" / "bank-a.csv").read_text().splitlines()
    assert customers[0] == "phone,segment,balance" and int(customers[1].split(",")[2]) >= 0
    assert invoke("demo", "--scenario", "nope").exit_code == 2

    # `chain up` on the demo's chain, stopped by Ctrl-C, then the demo (issue 23, item 3): it
    # works, on the same deployment (the chain kept its genesis); this time left running on fixed
    # ports, then stopped by SIGTERM with every process of it
    chain = subprocess.Popen(
        [*CLI, "chain", "up", "--port", port],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert chain.stderr is not None and "chain up at" in chain.stderr.readline()
    chain.send_signal(signal.SIGINT)
    assert chain.wait(timeout=60) == 0  # stopped by SIGINT, anvil with it
    third = _demo_stopped_by("sigterm", tmp_path, {**os.environ, **env}, port, _free_ports(5))
    third_summary = json.loads(third)
    assert third_summary["contracts"] == summary["contracts"]  # nothing redeployed
    after = third_summary["scenario"]
    assert after["status"] == "settled" and after["intersectionCorrect"] is True

    # what `demo --reset` removes before it starts: the next run is on a new chain
    settings = Settings(var_path=tmp_path / "var", deployments_path=tmp_path / "deployments")
    removed = reset_demo(settings)
    assert {path.name for path in removed} == {"chain", "nodes", "demo-data", "31337.json"}
    assert not list((tmp_path / "deployments").iterdir())
    assert sorted(path.name for path in (tmp_path / "var").iterdir()) == ["logs"]


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
    """An exit with a message and its code, no other exception (a traceback)."""
    init = ["node", "init", "--org", "x", "--home", str(tmp_path / "x")]
    bad = invoke(*init, env={"PRIVLEDGER_NODE_KEY": "not-a-key"})
    assert bad.exit_code == 2 and "not a private key" in bad.output
    assert isinstance(bad.exception, SystemExit), bad.exception
    no_key = invoke(*init, env={"PRIVLEDGER_NODE_KEY": ""})
    assert no_key.exit_code == 2 and "PRIVLEDGER_NODE_KEY" in no_key.output
    assert isinstance(no_key.exception, SystemExit), no_key.exception


@pytest.mark.security
def test_only_a_home_under_the_development_password_gets_a_cheap_keystore(tmp_path: Path) -> None:
    """The public development password gets a cheap scrypt (it protects nothing); a home under
    a password of its own keeps the keystore standard's cost, 2^18."""
    costs = {}
    for password in (DEV_KEYSTORE_PASSWORD, "a password of its own"):
        home = tmp_path / str(len(costs))
        init = ["node", "init", "--org", "x", "--home", str(home), "--new-key"]
        made = invoke(*init, env={"PRIVLEDGER_KEYSTORE_PASSWORD": password})
        assert made.exit_code == 0, made.output
        (key_file,) = (home / "keystore").glob("0x*.json")
        costs[password] = json.loads(key_file.read_text())["crypto"]["kdfparams"]["n"]
    assert costs == {DEV_KEYSTORE_PASSWORD: 2**10, "a password of its own": 2**18}


def test_query_stats_and_lending_commands_are_discoverable_and_check_their_arguments() -> None:
    from typer.testing import CliRunner

    from privledger.cli import app

    runner = CliRunner()
    env = {"PRIVLEDGER_NODE_URL": f"http://127.0.0.1:{free_port()}", "PRIVLEDGER_TOKEN": "t"}
    for command, options in (
        (["query", "pir"], ["--dataset", "--value-column", "--key", "--keys", "--mode", "--wait"]),
        (["stats", "run"], ["--dataset", "--column", "--dealer", "--op", "--edges", "--wait"]),
        (["lending", "check"], ["--bank", "--customer", "--limit", "--query", "--dealer"]),
    ):
        shown = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.stdout
        assert all(option in shown.stdout for option in options), (command, shown.stdout)
    assert all(name in runner.invoke(app, ["--help"]).stdout for name in ("query", "lending"))

    holder = ["query", "pir", "--dataset", "0x" + "1" * 64, "--column", "phone"]
    holder += ["--value-column", "segment"]
    stats = ["stats", "run", "--dataset", "0x" + "2" * 64, "--dealer", "4"]
    lending = ["lending", "check", "--bank", "0x" + "3" * 64, "--dealer", "4"]
    refused = {
        "give either --key": [*holder],  # neither --key nor --keys
        "give either --key ": [*holder, "--key", "k", "--keys", "0x" + "4" * 64],
        "Invalid value for '--mode'": [*holder, "--key", "k", "--mode", "fast"],
        "need --owner-token": [*holder, "--key", "k"],  # a one-off dataset needs the owner
        "needs --edges": [*stats, "--column", "amount", "--op", "histogram"],
        "Invalid value for '--op'": [*stats, "--column", "amount", "--op", "median"],
        "--edges:": [*stats, "--column", "amount", "--edges", "0,x"],
        "once per --dataset": [*stats, "--column", "a", "--column", "b", "--column", "c"],
        "give either --customer": [*lending, "--customer", "c", "--query", "0x" + "5" * 64],
        "--exceeds goes with --query": [*lending, "--customer", "c", "--exceeds"],
        "--limit goes with --customer": [*lending, "--query", "0x" + "5" * 64, "--limit", "1"],
    }
    for message, args in refused.items():
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert message.strip() in result.stderr, (message, result.stderr)
    negative = runner.invoke(app, [*lending, "--customer", "c", "--limit", "-1"], env=env)
    assert negative.exit_code == 2  # a negative limit is refused before anything is sent
    unreachable = runner.invoke(app, [*stats, "--column", "amount"], env=env)
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.stderr


def test_task_templates_a_psi_from_flags_and_the_commands_of_waiting() -> None:
    from typer.testing import CliRunner

    from privledger.api.examples import TASK_EXAMPLES
    from privledger.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["task", "template", "--help"])
    assert shown.exit_code == 0 and "<ecdh|kkrt|" in shown.stdout  # --help lists the choices
    for protocol, example in TASK_EXAMPLES.items():
        printed = runner.invoke(app, ["task", "template", protocol])
        assert printed.exit_code == 0, printed.stderr
        assert json.loads(printed.stdout) == example.body  # checked in test_task_examples
        assert "your dataset" in printed.stderr or "the partner's dataset" in printed.stderr
    unknown = runner.invoke(app, ["task", "template", "psi-please"])
    listed = re.sub(r"[\s│]", "", unknown.stderr)  # the error lists every choice
    assert unknown.exit_code == 2 and all(f"'{p}'" in listed for p in TASK_EXAMPLES), listed

    env = {"PRIVLEDGER_NODE_URL": f"http://127.0.0.1:{free_port()}", "PRIVLEDGER_TOKEN": "t"}
    psi = ["task", "psi", "--mine", "0x" + "1" * 64, "--theirs", "0x" + "2" * 64]
    unreachable = runner.invoke(app, [*psi, "--column", "phone"], env=env)
    assert unreachable.exit_code == 1
    assert "cannot reach" in unreachable.stderr and "PRIVLEDGER_NODE_URL" in unreachable.stderr
    wrong = runner.invoke(app, [*psi, "--column", "phone", "--output", "all"], env=env)
    assert wrong.exit_code == 2 and "requester" in wrong.stderr  # the choices are listed
    # the commands of waiting work (issue 23, item 6): the task list, approvals and the inbox
    for command in (["task", "list"], ["approval", "list"], ["inbox"]):
        answer = runner.invoke(app, command, env=env)
        assert answer.exit_code == 1 and "cannot reach" in answer.stderr, command
    for decision in ("approve", "reject"):
        shown = runner.invoke(app, ["approval", decision, "--help"])
        assert shown.exit_code == 0 and "{task_id} {dataset}" in shown.stdout


def test_a_histogram_says_how_many_values_it_does_not_show(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from privledger.cli.queries import not_in_bins

    assert not_in_bins(10, [4, 6], [0.0, 1.0, 2.0]) == 0
    assert capsys.readouterr().err == ""
    assert not_in_bins(10, [4, 3], [0.0, 1.0, 2.0]) == 3
    assert "3 of 10 values fall outside the edges [0, 2]; widen" in capsys.readouterr().err
    assert not_in_bins(10, [4, None], [0.0, 1.0, 2.0]) == 6
    assert "or in withheld bins" in capsys.readouterr().err


def test_sdk_task_bodies_are_what_the_api_accepts() -> None:
    from privledger.api.schemas import TaskIn
    from privledger.evm.contracts import FailureReason
    from privledger.sdk import lending_task, pir_task, psi_task, stats_task
    from privledger.sdk.errors import FAILURE_REASONS

    assert {reason.value: reason.name for reason in FailureReason} == FAILURE_REASONS
    mine, theirs = "0x" + "a" * 64, "0x" + "b" * 64
    pir = TaskIn.model_validate(
        pir_task(theirs, column="phone", value_column="segment", keys_dataset=mine, fee_wei=5)
    )
    assert (pir.kind, pir.protocol, pir.fee_wei) == ("pir", "simplepir", 5)
    assert [(i.dataset, i.column, i.value_column) for i in pir.inputs] == [
        (mine, "phone", None),
        (theirs, "phone", "segment"),
    ]
    bucket = TaskIn.model_validate(
        pir_task(theirs, column="phone", value_column="v", keys_dataset=mine, mode="bucket")
    )
    assert bucket.protocol == "bucket"
    stats = TaskIn.model_validate(
        stats_task([mine, theirs], column=["x", "y"], dealer=4, histogram_edges=[0, 1])
    )
    assert (stats.protocol, stats.dealer, stats.histogram_edges) == ("joint-stats", 4, [0.0, 1.0])
    assert [i.column for i in stats.inputs] == ["x", "y"]
    psi = TaskIn.model_validate(psi_task(mine, theirs, column="phone", output="both"))
    assert (psi.protocol, psi.output, [i.dataset for i in psi.inputs]) == (
        "ecdh",
        "both",
        [mine, theirs],
    )
    total = TaskIn.model_validate(lending_task(mine, banks=[theirs], dealer=4))
    assert total.protocol == "lending-total" and total.inputs[0].value_column is None
    exceeds = TaskIn.model_validate(
        lending_task(mine, banks=[theirs], dealer=4, limit_column="limit")
    )
    assert exceeds.protocol == "lending-exceeds"
    assert [i.value_column for i in exceeds.inputs] == ["limit", "amount"]
    try:
        stats_task([mine, theirs], column=["x"], dealer=4)
    except ValueError as exc:
        assert "1 columns for 2 datasets" in str(exc)
    else:
        raise AssertionError("a column count that does not match the datasets was accepted")


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    while True:
        base = free_port()
        if base + count < 65_000 and all(_free(base + i) for i in range(1, count)):
            return base


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _the_printed_lines_point_the_cli_at_each_node(
    log: Path, base_port: int, env: dict[str, str]
) -> None:
    deadline = time.monotonic() + 30
    while len(lines := re.findall(r"^export (.*)  # (\S+)$", log.read_text(), re.M)) < 5:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    exports = {org: dict(pair.split("=", 1) for pair in line.split()) for line, org in lines}
    orgs = ["bank-a", "bank-b", "telecom", "regulator", "police"]
    assert [exports[org]["PRIVLEDGER_NODE_URL"] for org in orgs] == [
        f"http://127.0.0.1:{base_port + offset}" for offset in range(5)
    ]
    assert "PRIVLEDGER_OWNER_TOKEN" not in exports["regulator"]  # it owns no data
    listed = run("dataset", "list", env={**env, **exports["bank-a"]})
    assert listed.returncode == 0, listed.stderr
    assert "bank-a-customers" in {dataset["name"] for dataset in json.loads(listed.stdout)}
    taken = invoke("demo", "--base-port", str(base_port), env=env)
    assert taken.exit_code == 1 and f"port {base_port}" in taken.output


def test_demo_in_the_background_of_a_script_stops_on_sigint(tmp_path: Path) -> None:
    """Ctrl-C's SIGINT on a demo started in the background of a script (which inherits SIGINT
    as ignored) stops anvil and every node process too (SIGTERM: the demo test above)."""
    env = {
        **os.environ,
        "PRIVLEDGER_VAR_PATH": str(tmp_path / "var"),
        "PRIVLEDGER_DEPLOYMENTS_PATH": str(tmp_path / "deployments"),
    }
    _demo_stopped_by("sigint-in-background", tmp_path, env, str(free_port()), None)


def _demo_stopped_by(
    how: str, tmp_path: Path, env: dict[str, str], port: str, base_port: int | None
) -> str:
    """Run ``demo --scenario psi`` until the consortium runs (its nodes on ``base_port`` and the
    next four, whose printed lines must point the CLI at them), stop it as ``how`` says
    (``kill -TERM``, or SIGINT to a demo that a script started in the background), and check
    that no process of it is left; what it printed on stdout."""
    log = (tmp_path / "demo.log").open("w+")
    out = (tmp_path / "demo.out").open("w+")
    command = [*CLI, "demo", "--scenario", "psi", "--port", port]
    if base_port is not None:  # the nodes on fixed ports (issue 23, item 4)
        command += ["--base-port", str(base_port)]
    if how == "sigint-in-background":  # what `cmd &` in a script does to SIGINT
        command = ["sh", "-c", "trap '' INT; exec \"$@\"", "sh", *command]
    demo = subprocess.Popen(command, stdout=out, stderr=log, env=env)
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while "consortium running" not in Path(log.name).read_text():
            assert demo.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, "the demo did not come up"
            time.sleep(0.5)
        started = _descendants(demo.pid)
        assert len(started) >= 5  # anvil and four node processes
        if base_port is not None:
            _the_printed_lines_point_the_cli_at_each_node(Path(log.name), base_port, env)
        demo.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        assert demo.wait(timeout=90) in (0, 130)
        deadline = time.monotonic() + 10
        while (left := {pid for pid in started if _alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"left running after {how}: {left}"
    finally:  # whatever the outcome, no process of this test outlives it
        for pid in started | _descendants(demo.pid) | {demo.pid}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        demo.wait()
    return Path(out.name).read_text()
