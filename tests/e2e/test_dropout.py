"""A party's node killed while the protocol runs, against the real chain, for the three F9/F10
tasks: joint statistics, an anonymous query (the holder dies mid-query) and the multi-lending
check. Each time the task fails on chain with PEER_UNREACHABLE, the fee goes back to the
requester, nobody anchors anything, no survivor -- the dealer included -- is left hanging, and
no node hands out a result.

"While the protocol runs" without a test hook in the product: the victim is killed as soon as
every data party's node has logged that its protocol runner started the task -- inputs loaded,
channels open, hellos exchanged (``conftest.kill_when_started``) -- and the victim's share of
the work is large enough (10^6 rows to aggregate, a 2 x 10^5-record PIR table to build, a
2 x 10^5-loan book to scan inside MPC) that it cannot be done by then. Which survivor notices
first varies (a timeout, a refused connection, a peer's or the dealer's abort notice, a peer
that gave up before its runner started); the reason recorded must not.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from subprocess import PIPE

import numpy as np
import pytest

from privledger.evm.contracts import FailureReason, TaskStatus
from privledger.sdk import NodeClient, TaskFailed, lending_task, stats_task

from .conftest import (
    Running,
    kill_when_started,
    log_mark,
    restarted_after,
    wait_local_state,
)
from .test_statistics import LENDING_TERMS
from .test_walking_path import FEE, grant, wait_status

VICTIM = "bank-b"
STATS_ROWS = 1_000_000
PIR_RECORDS = 200_000
BOOK_LOANS = 200_000


def _register(running: Running, org: str, name: str, header: str, lines: Iterator[str]) -> str:
    path = running.import_dir(org) / f"{org}-{name}-{secrets.token_hex(3)}.csv"
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    body = {"path": str(path), "name": name, "level": 2, "unitPrice": 10**9}
    with running.client(org, "data_owner") as owner:
        response = owner.post("/datasets", json=body, timeout=120)
        assert response.status_code == 201, response.text
        return str(response.json()["datasetId"])


@dataclass(frozen=True)
class Data:
    stats: dict[str, str]  # org -> dataset with an "amount" column
    pir_holder: str  # the victim's phone -> segment table
    pir_keys: str  # the telecom's three keys
    books: dict[str, str]  # org -> loan book (customer, amount)
    lending_query: str  # bank-a's customer row


@pytest.fixture(scope="module")
def data(running: Running) -> Data:
    """Every dataset and grant made up front, while the victim's node is up."""
    rng = np.random.default_rng(5)
    stats = {
        org: _register(
            running,
            org,
            "amounts",
            "customer,amount",
            (f"c{i},{a}" for i, a in enumerate(rng.integers(0, 10**5, rows).tolist())),
        )
        for org, rows in (("telecom", 300), ("bank-a", 300), (VICTIM, STATS_ROWS))
    }
    pir_holder = _register(
        running,
        VICTIM,
        "segments",
        "phone,segment",
        (f"+44{i:010d},s{i % 7}" for i in range(PIR_RECORDS)),
    )
    pir_keys = _register(
        running, "telecom", "keys", "phone", iter(["+440000000001", "+440000000002", "+4"])
    )
    amounts = rng.integers(1, 10**6, BOOK_LOANS).tolist()
    books = {
        VICTIM: _register(
            running,
            VICTIM,
            "book",
            "customer,amount",
            (f"c{i},{a}" for i, a in enumerate(amounts)),
        ),
        "telecom": _register(running, "telecom", "book", "customer,amount", iter(["c7,100"])),
    }
    query = _register(running, "bank-a", "query", "customer,limit", iter(["c7,1000"]))
    grant(running, "bank-a", stats["bank-a"], "telecom", kinds=["stats"])
    grant(running, VICTIM, stats[VICTIM], "telecom", kinds=["stats"])
    grant(running, VICTIM, pir_holder, "telecom", kinds=["pir"])
    grant(running, VICTIM, books[VICTIM], "bank-a", terms=LENDING_TERMS)
    grant(running, "telecom", books["telecom"], "bank-a", terms=LENDING_TERMS)
    return Data(stats, pir_holder, pir_keys, books, query)


def _kill_mid_task(
    running: Running,
    requester: str,
    survivors: list[str],
    submit: Callable[[], int | None],
    reported: Callable[[int], None],
) -> None:
    """``submit`` the task (its id, or None when a background command submits it), kill the
    victim once its runner started, then check the clean failure everywhere; ``reported``
    checks what the requester's client says."""
    ledger = running.ledger(0)
    requester_org = running.org_ids[requester]
    balance = ledger.metering.balance_of(requester_org)
    marks = {org: log_mark(node) for org, node in running.nodes.items()}
    submitted = submit()
    with restarted_after(running.nodes[VICTIM]):
        parties = [org for org in survivors if org != "regulator"] + [VICTIM]
        task_id = kill_when_started(running, VICTIM, submitted, marks, parties)
        with running.client(requester, "operator") as client:
            final = wait_status(client, task_id, {"failed", "settled"}, timeout_s=90)
        assert final["status"] == "failed", final
        assert final["failureReason"] == FailureReason.PEER_UNREACHABLE, final
        events = [event["event"] for event in final["timeline"]]
        assert "TaskStarted" in events  # it was running on chain when the party died
        assert events.count("TaskFailed") == 1 and "FeeAllocated" not in events
        refunds = [e["args"] for e in final["timeline"] if e["event"] == "FeeRefunded"]
        assert refunds == [{"taskId": task_id, "payerOrg": requester_org, "amount": FEE}]
        assert ledger.metering.balance_of(requester_org) == balance + FEE
        assert ledger.tasks.get_task(task_id).status is TaskStatus.FAILED
        # every survivor closes the task (none is left waiting) and holds no output
        for org in survivors:
            seen = wait_local_state(running, org, task_id, "failed", timeout_s=60)
            assert str(seen["localFailure"]).startswith("PEER_UNREACHABLE"), (org, seen)
            with running.client(org, "operator") as client:
                assert client.get(f"/tasks/{task_id}/result").status_code == 404
        reported(task_id)
    # the restarted victim closes its interrupted part too; nobody ever anchored anything
    assert wait_local_state(running, VICTIM, task_id, "failed")["status"] == "failed"
    assert ledger.tasks.anchors(task_id) == ()


def _sdk(running: Running, org: str) -> NodeClient:
    node = running.nodes[org]
    return NodeClient(node.url, node.tokens["operator"])


def _sdk_reports_failure(running: Running, org: str, answer: str) -> Callable[[int], None]:
    def reported(task_id: int) -> None:
        with _sdk(running, org) as sdk, pytest.raises(TaskFailed) as failed:
            getattr(sdk, answer)(task_id, timeout_s=5)  # the SDK says why, reveals nothing
        assert failed.value.reason == "PEER_UNREACHABLE"
        assert failed.value.task.task_id == task_id

    return reported


def test_joint_statistics_party_killed_mid_protocol(running: Running, data: Data) -> None:
    datasets = [data.stats[org] for org in ("telecom", "bank-a", VICTIM)]  # the victim last

    def submit() -> int:
        with _sdk(running, "telecom") as sdk:
            task = sdk.submit(
                stats_task(
                    datasets,
                    column="amount",
                    dealer=running.org_ids["regulator"],
                    # bins each provider fills with 5 rows or more (or none): thinner ones,
                    # a provider refuses before it shares anything
                    histogram_edges=[0, 10_000, 50_000, 100_000],
                    frac_bits=4,
                    fee_wei=FEE,
                )
            )
        return task.task_id

    _kill_mid_task(
        running,
        "telecom",
        ["telecom", "bank-a", "regulator"],
        submit,
        _sdk_reports_failure(running, "telecom", "stats_answer"),
    )


def test_pir_holder_killed_mid_query_from_the_command_line(running: Running, data: Data) -> None:
    """The analyst's `privledger query pir` is waiting when the holder dies: it exits with 1 and
    prints the task's id and the reason recorded on chain, no values."""
    node = running.nodes["telecom"]
    env = {**os.environ, "PRIVLEDGER_NODE_URL": node.url}
    env["PRIVLEDGER_TOKEN"] = node.tokens["operator"]
    command = [sys.executable, "-m", "privledger.cli", "query", "pir", "--keys", data.pir_keys]
    command += ["--dataset", data.pir_holder, "--column", "phone", "--value-column", "segment"]
    command += ["--fee-wei", str(FEE)]
    waiting: list[subprocess.Popen[str]] = []

    def submit() -> None:
        waiting.append(subprocess.Popen(command, env=env, stdout=PIPE, stderr=PIPE, text=True))

    def reported(task_id: int) -> None:
        out, err = waiting[0].communicate(timeout=120)
        assert waiting[0].returncode == 1, (out, err)
        printed = json.loads(out)
        assert printed["taskId"] == task_id and printed["status"] == "failed"
        assert printed["failureReason"] == "PEER_UNREACHABLE" and "values" not in printed
        assert "fee was refunded" in err and "Traceback" not in err

    try:
        _kill_mid_task(running, "telecom", ["telecom"], submit, reported)
    finally:
        for process in waiting:
            if process.poll() is None:
                process.kill()
                process.communicate()


def test_multi_lending_bank_killed_mid_protocol(running: Running, data: Data) -> None:
    def submit() -> int:
        with _sdk(running, "bank-a") as sdk:
            task = sdk.submit(
                lending_task(
                    data.lending_query,
                    banks=[data.books["telecom"], data.books[VICTIM]],
                    dealer=running.org_ids["regulator"],
                    limit_column="limit",
                    fee_wei=FEE,
                )
            )
        return task.task_id

    _kill_mid_task(
        running,
        "bank-a",
        ["bank-a", "telecom", "regulator"],
        submit,
        _sdk_reports_failure(running, "bank-a", "lending_answer"),
    )
