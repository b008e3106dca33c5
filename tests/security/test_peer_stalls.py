"""Stalls a requester's node could cause at the others' nodes, and an outsider sharing an address.

- An outsider calling from a provider's address (the same host -- every node of the embedded
  consortium calls from 127.0.0.1 --, a tenant host, a NAT or proxy) with made-up credentials
  used up that address's calls at the requester's node; the provider's signed spec read was then
  answered 429, taken as a spec mismatch, and the provider failed the honest task on chain.
  Signed peer calls (task specs, frame streams) no longer wait on an address's failed calls, and a
  provider asks a busy or throttling requester's node again until the fetch's deadline.
- Anyone with the operator role may ask an owner to approve a task on its dataset (grant id 0,
  fee 0). The owner's workflow console reads every pending request at once, and each read of a
  trickled spec held an API request thread ~75 s: sixteen requests and one look at the inbox
  left the owner's whole API unanswered. The inbox now reads a spec within 5 s, at most two at
  once per requester.
- A requester (mallory) submits tasks nobody needs to consent to -- her own dataset, a published
  dealer as the one other participant, fee 0 -- and serves their specs one byte every 25 s. Each
  spec read held one of the dealer's four task threads for ~75 s, so eight such tasks held them
  all and the consortium's honest tasks that needed the dealer failed. A spec read now ends by a
  deadline on the clock, and one organisation's tasks take at most half of a node's task threads.

helper-56 ran both attacks against 37ff21f: the honest task failed (``SPEC_MISMATCH``, then
``PEER_UNREACHABLE``), and the owner's API gave its own operator no answer for 20 s.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time

import httpx
import pytest

from privledger.api.threads import REQUEST_THREADS
from privledger.evm.contracts import Kind
from privledger.node.components import protocol_id
from tests.e2e.conftest import Running
from tests.e2e.test_walking_path import grant, submit, wait_status

from .malicious import Mallory, now
from .malicious import grant as grant_kinds
from .test_requester_attacks import statistics_body

pytestmark = pytest.mark.security

SHARED = "127.0.0.1"  # the provider's own address: every node of the consortium calls from it
JAMMING_TASKS = 8  # twice the worker's task threads
TRICKLE_S = 25.0  # under the node client's 30 s read timeout


def _hammer(base_url: str, stop: threading.Event, sent: list[int]) -> None:
    transport = httpx.HTTPTransport(local_address=SHARED)
    with httpx.Client(base_url=base_url, transport=transport, timeout=10) as client:
        while not stop.is_set():
            response = client.get("/api/v1/tasks/1", headers={"Authorization": "Bearer pl_made-up"})
            sent.append(response.status_code)


def test_an_outsider_at_the_providers_address_cannot_fail_a_task(running: Running) -> None:
    telecom_data = running.register("telecom")  # the honest requester
    bank_data = running.register("bank-a")  # the honest provider
    grant(running, "bank-a", bank_data, "telecom")
    with running.client("telecom", "operator") as client:  # its token proves itself first
        assert client.get("/tasks").status_code == 200
    stop, sent = threading.Event(), []
    threads = [
        threading.Thread(target=_hammer, args=(running.nodes["telecom"].url, stop, sent))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while sent.count(429) < 50:  # the shared address's failed calls are used up
            assert time.monotonic() < deadline, sent[-5:]
            time.sleep(0.05)
        task = submit(running, telecom_data, bank_data)
        with running.client("telecom", "operator") as client:
            final = wait_status(client, task["taskId"], {"settled", "failed"})
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert final["status"] == "settled", final


class TrickleServer:
    """An HTTP server that answers every request 200 with a long body, one byte per TRICKLE_S."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self.requests: list[str] = []  # the request line of each connection
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.5)
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            self.accepted += 1
            self.connections.append(connection)
            threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def requests_for(self, task_ids: list[int]) -> list[str]:
        """The request lines that asked for the spec of one of ``task_ids``."""
        return [line for line in self.requests if any(f"/{task}/" in line for task in task_ids)]

    def _trickle(self, connection: socket.socket) -> None:
        try:
            self.requests.append(connection.recv(65536).split(b"\r\n", 1)[0].decode("latin-1"))
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not self.stop.wait(TRICKLE_S):
                connection.sendall(b"{")
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        for connection in self.connections:
            connection.close()
        self.listener.close()


def _honest_statistics(mallory: Mallory, telecom_data: str, bank_data: str) -> dict[str, object]:
    body = {**statistics_body(mallory, telecom_data, bank_data), "feeWei": 10**15}
    with mallory.running.client("telecom", "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        return wait_status(client, response.json()["taskId"], {"settled", "failed"}, 240)


def _amounts(mallory: Mallory, org: str) -> str:
    path = mallory.running.import_dir(org) / f"{org}-amounts-{time.monotonic_ns()}.csv"
    path.write_text("customer,amount\n" + "".join(f"c{i},{100 + i}\n" for i in range(60)))
    body = {"path": str(path), "name": path.stem, "level": 2, "unitPrice": 0}
    with mallory.running.client(org, "data_owner") as owner:
        response = owner.post("/datasets", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["datasetId"])


def _unconsented(
    mallory: Mallory, count: int, kind: Kind, protocol: str, dataset: str, other_org: int
) -> list[int]:
    """``count`` tasks of mallory's on chain with ``other_org`` over ``dataset`` under no grant
    (her own data, or an approval request on another's): no consent, fee 0, gas only. Their spec
    hashes are made up: no node gets as far as checking one."""
    return [
        mallory.ledger.tasks.submit_task(
            spec_hash=secrets.token_bytes(32),
            kind=kind,
            protocol=protocol_id(protocol),
            inputs=[bytes.fromhex(dataset[2:])],
            grant_ids=[bytes(32)],
            participants=[mallory.org_id, other_org],
            deadline=now(mallory.running) + 600,
            fee=0,
        )
        for _ in range(count)
    ]


def test_tasks_nobody_consented_to_cannot_jam_the_dealer(mallory: Mallory) -> None:
    running = mallory.running
    regulator = running.org_ids["regulator"]
    telecom_data, bank_data = _amounts(mallory, "telecom"), _amounts(mallory, "bank-a")
    grant_kinds(running, "bank-a", bank_data, running.org_ids["telecom"], kinds=["stats"])
    own = mallory.register(["customer", "amount"], [[f"m{i}", i] for i in range(60)])
    orgs = mallory.ledger.orgs
    before = orgs.get_org(mallory.org_id)
    server = TrickleServer()
    try:
        orgs.update_node(mallory.org_id, f"http://127.0.0.1:{server.port}", before.node_key)
        _unconsented(mallory, JAMMING_TASKS, Kind.STATS, "joint-stats", own, regulator)
        deadline = time.monotonic() + 60
        while server.accepted < 2:  # the dealer reads trickled specs in the threads she may hold
            assert time.monotonic() < deadline, f"the dealer read {server.accepted} specs"
            time.sleep(0.2)
        honest = _honest_statistics(mallory, telecom_data, bank_data)
    finally:
        orgs.update_node(mallory.org_id, before.endpoint, before.node_key)
        server.close()
    assert honest["status"] == "settled", honest


def test_approval_requests_from_a_slow_requester_leave_the_owners_api_up(
    mallory: Mallory,
) -> None:
    running = mallory.running
    bank_a = running.org_ids["bank-a"]
    dataset = running.register("bank-a")
    orgs = mallory.ledger.orgs
    before = orgs.get_org(mallory.org_id)
    server = TrickleServer()
    try:
        orgs.update_node(mallory.org_id, f"http://127.0.0.1:{server.port}", before.node_key)
        # an approval request each on bank-a's dataset
        asked = _unconsented(mallory, REQUEST_THREADS, Kind.PSI, "ecdh", dataset, bank_a)
        node_url = running.nodes["bank-a"].url
        token = running.nodes["bank-a"].tokens["data_owner"]
        shown: list[str] = []

        def look(task_id: int) -> None:  # the workflow console reads every request at once
            with httpx.Client(base_url=node_url, timeout=120) as client:
                answer = client.get(
                    f"/api/v1/approvals/{task_id}/{dataset}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                shown.append(answer.json()["specStatus"])

        looks = [threading.Thread(target=look, args=(task_id,)) for task_id in asked]
        for thread in looks:
            thread.start()
        deadline = time.monotonic() + 30
        while len(server.requests_for(asked)) < 2:
            assert time.monotonic() < deadline, server.requests
            time.sleep(0.1)
        started = time.monotonic()
        with running.client("bank-a", "operator") as operator:
            answered = None
            with contextlib.suppress(httpx.TimeoutException):
                answered = operator.get("/tasks", timeout=20).status_code
        waited = time.monotonic() - started
        for thread in looks:
            thread.join(30)
    finally:
        orgs.update_node(mallory.org_id, before.endpoint, before.node_key)
        server.close()
    assert answered == 200 and waited < 5, (answered, waited)
    # at most two of these tasks' specs read at once, each within 5 s (the endpoint may also be
    # asked for specs of mallory's tasks of earlier tests that another node is still reading)
    assert len(server.requests_for(asked)) <= 2, server.requests
    assert shown == ["unreachable"] * REQUEST_THREADS
