"""An outsider flooding a node's API without credentials, or with credentials that prove nothing
(issue 14, item 7): each call it made used to write an audit entry of its own, anchored on chain,
so anyone could grow the tamper-evident log (and its anchoring work) without bound.

Calls without credentials, and calls whose credentials fail, are now limited per client address
(429 ``rate_limited`` with ``Retry-After``), and they are logged as counts per route template,
method and status per interval, never per call; an authenticated user at the same address goes on
unthrottled, each of its calls an entry of its own. The attacker's client binds another loopback
address (127.0.0.2), as a separate host would be.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Running
from tests.e2e.test_audit import entries

pytestmark = pytest.mark.security

ORG = "bank-b"
ATTACKER = "127.0.0.2"
FLOOD = 400  # calls of each kind, several times the default burst
# the flood's route and unknown paths, two statuses each (answered or 429), in at most three of
# the node's aggregation intervals, and as many again for anyone else's anonymous calls meanwhile
# (the consortium's health checks): what the log may grow by, whatever the number of calls
BOUND = 2 * 2 * 3 * 2
# route templates, never a path the attacker chose; unknown paths and calls refused before routing
# are counted under the API's prefix
FLOODED = {"GET /api/v1/tasks/{task_id}", "GET /api/v1/*"}
PAGE = 500  # what tests.e2e.test_audit.entries asks for


def _from(address: str, base_url: str, **headers: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, headers=headers, timeout=30)


def _calls(entry: dict[str, Any]) -> int:
    """How many calls an entry stands for: an aggregate's outcome is ``<status> x<count>``."""
    _, _, count = str(entry["outcome"]).partition(" x")
    return int(count) if count else 1


def _log_after(owner: httpx.Client, start: int) -> list[dict[str, Any]]:
    """Every audit entry after the id ``start``, page by page (reading the log is logged too:
    a short page is the last)."""
    log: list[dict[str, Any]] = []
    while True:
        page = entries(owner, after=log[-1]["id"] if log else start)
        log += page
        if len(page) < PAGE:
            return log


def _flood(client: httpx.Client) -> list[httpx.Response]:
    """Task ids and paths the attacker makes up: each a path of its own, never seen before."""
    answers = []
    for index in range(FLOOD):
        made_up = (
            f"/api/v1/tasks/{secrets.randbelow(2**40) + 1}"
            if index % 2
            else f"/api/v1/{secrets.token_hex(6)}"
        )
        answers.append(client.get(made_up))
    return answers


def test_a_flood_without_credentials_is_throttled_and_logged_in_aggregate(
    running: Running,
) -> None:
    node = running.nodes[ORG]
    with running.client(ORG, "data_owner") as owner:
        start = max((e["id"] for e in entries(owner)), default=0)
    token = node.tokens["data_owner"]
    user_answers: list[int] = []
    flooding = threading.Event()

    def user() -> None:  # the organisation's own data owner, at the attacker's address
        with _from(ATTACKER, f"{node.url}/api/v1", Authorization=f"Bearer {token}") as client:
            while flooding.is_set() or not user_answers:
                user_answers.append(client.get("/datasets").status_code)
                time.sleep(0.02)

    flooding.set()
    working = threading.Thread(target=user)
    working.start()
    try:
        with _from(ATTACKER, node.url) as anonymous:
            plain = _flood(anonymous)
        with _from(ATTACKER, node.url, Authorization="Bearer pl_made-up") as forged:
            unproven = _flood(forged)
    finally:
        flooding.clear()
        working.join()

    assert set(user_answers) == {200}, user_answers  # never throttled
    calls = len(plain) + len(unproven)
    with running.client(ORG, "data_owner") as owner:
        deadline = time.monotonic() + 60
        while True:  # the counts of the last interval are written when it ends
            log = _log_after(owner, start)
            anonymous_entries = [e for e in log if e["actor"] == "anonymous"]
            flooded = sum(_calls(e) for e in anonymous_entries if e["subject"] in FLOODED)
            if flooded >= calls or len(anonymous_entries) > BOUND or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert len(anonymous_entries) <= BOUND, (  # a bounded number of entries...
        f"{len(anonymous_entries)} audit entries for {calls} anonymous calls"
    )
    assert flooded == calls  # ...counting every call, under route templates only
    assert {e["subject"] for e in anonymous_entries} >= FLOODED
    own = [e for e in log if e["subject"] == "GET /api/v1/datasets"]
    assert len(own) == len(user_answers) and all("(data_owner)" in e["actor"] for e in own)

    for answers, answered in ((plain, {401, 404}), (unproven, {401, 404})):
        statuses = {answer.status_code for answer in answers}
        assert statuses <= answered | {429} and 429 in statuses, statuses
        refused = [answer for answer in answers if answer.status_code == 429]
        assert len(refused) > FLOOD // 2  # the default burst is 100, refilled at 10 a second
        assert refused[0].json()["error"]["code"] == "rate_limited"
        assert int(refused[0].headers["Retry-After"]) >= 1
