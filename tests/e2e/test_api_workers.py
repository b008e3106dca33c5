"""A node of two API processes on PostgreSQL: concurrent submissions get gapless, unique nonces
and land on chain once each; a PSI task still runs end to end (its frames reach the process
that runs it, on the peer port); a long-poll in either process wakes when the task changes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import httpx
import pytest
from eth_utils.crypto import keccak
from web3.types import TxData

from privledger.demo import wait_healthy
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import free_port

from .conftest import Running
from .test_walking_path import grant, submit

# the session's consortium on PostgreSQL (its nodes' stores), shared with the other tests of it
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("running", ["postgres"], indirect=True),
]

WORKERS = 2


def _api_process(pid: int) -> int:
    """The API process the node process ``pid`` started (not multiprocessing's helpers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    (found,) = (
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    )
    return found


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.fixture(scope="module")
def two_process_node(running: Running) -> Iterator[Running]:
    """The PostgreSQL consortium, its telecom node restarted with two API processes and a peer
    port of its own for this module's tests, and as it was afterwards."""
    telecom = running.nodes["telecom"]
    assert telecom.env["PRIVLEDGER_DATABASE_URL"].startswith("postgresql")
    as_it_was = telecom.env
    telecom.stop()
    telecom.env = {
        **as_it_was,
        "PRIVLEDGER_API_WORKERS": str(WORKERS),
        "PRIVLEDGER_PEER_PORT": str(free_port()),
    }
    telecom.restart()
    try:
        wait_healthy(telecom)
        yield running
    finally:
        telecom.stop()
        telecom.env = as_it_was
        telecom.restart()
        wait_healthy(telecom)


def test_concurrent_submissions_get_gapless_nonces_once_each(two_process_node: Running) -> None:
    running = two_process_node
    telecom = running.nodes["telecom"]
    other = _api_process(telecom.process.pid)  # beside the primary
    endpoint = running.ledger(0).orgs.get_org(running.org_ids["telecom"]).endpoint
    assert endpoint != telecom.url  # peers reach the primary on a port of its own
    mine, theirs = running.register("telecom"), running.register("bank-b")
    body = {
        "inputs": [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}]
    }
    signer = dev_account(3).address  # telecom's admin: its tokens' and its node's account
    w3 = running.w3
    first_block = w3.eth.block_number + 1
    first_nonce = w3.eth.get_transaction_count(signer, "pending")
    before = _cpu_ticks(other)

    def post(_: int) -> int:
        # a client of its own per call: new connections, spread over both processes
        with telecom.client("operator") as client:
            response = client.post("/tasks", json=body)
            assert response.status_code == 201, response.text
            return int(response.json()["taskId"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        task_ids = list(pool.map(post, range(40)))
    assert len(set(task_ids)) == 40
    assert _cpu_ticks(other) > before  # the second process took calls too

    sent = []
    for number in range(first_block, w3.eth.block_number + 1):
        for item in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            tx = cast(TxData, item)
            if tx["from"] == signer:
                sent.append((int(tx["nonce"]), bytes(tx["input"])))
    nonces = sorted(nonce for nonce, _ in sent)
    assert nonces == list(range(first_nonce, first_nonce + len(nonces)))  # gapless, unique
    submit_task = keccak(text=running.ledger(0).tasks.contract.functions.submitTask.signature)[:4]
    assert sum(1 for _, data in sent if data[:4] == submit_task) == 40


def test_psi_task_runs_and_a_long_poll_wakes_in_either_process(two_process_node: Running) -> None:
    running = two_process_node
    telecom_data = running.register("telecom")
    bank_data = running.register("bank-a")
    grant(running, "bank-a", bank_data, "telecom")
    task = submit(running, telecom_data, bank_data)
    assert task["status"] == "authorised"
    status, started = task["status"], time.monotonic()
    while status not in {"settled", "failed"}:
        assert time.monotonic() - started < 120, f"task still {status}"
        with running.client("telecom", "operator") as client:  # a new connection each time
            asked = time.monotonic()
            answer = client.get(
                f"/tasks/{task['taskId']}", params={"waitS": 25, "unlessStatus": status}
            ).json()
        # woken by the change (made in the primary), never left to run out its 25 s
        assert time.monotonic() - asked < 20, answer["status"]
        status = answer["status"]
    assert status == "settled", answer
    with running.client("telecom", "operator") as client:
        result = client.get(f"/tasks/{task['taskId']}/result").json()
    assert set(result["items"]) == running.people["telecom"] & running.people["bank-a"]


def test_frames_sent_to_the_api_port_are_sent_on(two_process_node: Running) -> None:
    """The process beside the primary refuses frames (421) and names the endpoint on chain."""
    running_url = two_process_node.nodes["telecom"].url
    for _ in range(40):  # each call a new connection: one lands on the other process
        response = httpx.post(f"{running_url}/api/v1/peer/frames", content=b"", timeout=10)
        if response.status_code == 421:
            error = response.json()["error"]
            assert error["code"] == "misdirected" and "endpoint on chain" in error["message"]
            return
    pytest.fail(f"no call to {running_url} reached the second API process")


def test_a_node_stopped_by_sigterm_stops_its_api_processes_first(two_process_node: Running) -> None:
    """SIGTERM (what ``kill``, systemd and a container runtime send) shuts the node down in
    order: the processes beside the primary are gone when the primary has exited, so nothing
    holds the API port, and the worker and store were closed (the node says it stopped)."""
    telecom = two_process_node.nodes["telecom"]
    other = _api_process(telecom.process.pid)
    logged = telecom.log_path.stat().st_size
    telecom.stop()  # SIGTERM, then waits for the primary
    assert telecom.process.returncode == 0, telecom.process.returncode
    assert not Path(f"/proc/{other}").exists(), "an API process outlived its node"
    port = int(telecom.url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with telecom.log_path.open("rb") as log:
        log.seek(logged)
        assert b"node telecom stopped" in log.read()
