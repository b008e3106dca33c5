"""An outsider holds a node's sockets with requests whose headers it never finishes (slowloris):
the node goes on answering its peers and an honest task settles (MISSION F23).

Without a deadline for a request's headers each such connection holds one of the node's file
descriptors for good; once the process's limit is reached the node accepts no connection, its
peers' frames time out and the task fails ``PEER_UNREACHABLE`` (red team F-11, with 20k
connections against the test machine's ``ulimit -n``). Here the attacked node's limit is lowered
to what it holds plus :data:`HEADROOM` while it runs, so a few hundred connections make the same
attack. The attacker has no account and calls from an address of its own; it reopens every
connection the node closes.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.e2e.conftest import Running
from tests.e2e.test_walking_path import grant, submit, wait_status

pytestmark = pytest.mark.security

ATTACKER = "127.0.0.2"
HEADROOM = 200  # descriptors the node may open beyond those it holds when the attack starts
HELD = HEADROOM + 100  # half-sent requests the attacker keeps open

HOLDER = r"""
import select, socket, sys, time
host, port, count, source = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
held = set()
reported = False
while True:
    while len(held) < count:
        try:
            s = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
            s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        except OSError:
            break
        held.add(s)
    if not reported:
        print("holding", len(held), flush=True)
        reported = True
    readable, _, _ = select.select(list(held), [], [], 0.5)
    for s in readable:  # closed by the node: open another
        held.discard(s)
        s.close()
    time.sleep(0.5)
"""


@contextmanager
def open_files_limited(pid: int, limit: int) -> Iterator[None]:
    """The process ``pid`` may hold ``limit`` file descriptors in the block (its soft limit: the
    hard one, once lowered, could not be raised again)."""
    before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, before[1]))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, before)


def test_half_sent_requests_do_not_stop_an_honest_task(running: Running) -> None:
    telecom_data = running.register("telecom")
    bank_data = running.register("bank-a")
    grant(running, "bank-a", bank_data, "telecom")
    node = running.nodes["bank-a"]
    host, port = node.url.removeprefix("http://").split(":")
    pid = node.process.pid
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    with open_files_limited(pid, in_use + HEADROOM):
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, host, port, str(HELD), ATTACKER],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            print(holder.stdout.readline().strip())
            time.sleep(2)
            try:
                health: int | str = httpx.get(f"{node.url}/api/v1/health", timeout=10).status_code
            except httpx.HTTPError as exc:
                health = type(exc).__name__
            task = submit(running, telecom_data, bank_data)
            with running.client("telecom", "operator") as client:
                final = wait_status(client, task["taskId"], {"settled", "failed"}, 180)
        finally:
            holder.kill()
            holder.wait()
    print(
        f"bank-a health under attack: {health}; task: {final['status']} "
        f"reason {final.get('failureReason')} local {final.get('localFailure')}"
    )
    assert health == 200, health
    assert final["status"] == "settled", final
