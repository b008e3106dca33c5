"""An outsider floods a node's explorer with login challenges to keep the auditors out.

Before, the explorer's challenge and login routes were outside the anonymous rate limit, and the
node kept its 10,000 newest challenges whoever asked for them: an outsider at an address of its
own, with no account, asked for challenges as fast as the node answered (~300/s), so an auditor's
challenge was dropped before it was signed and its login refused (401 ``invalid_challenge``).
Now those routes are limited per client address like the API's anonymous calls (429 beyond the
burst), and each address holds a bounded share of the outstanding challenges.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from privledger.evm.accounts import dev_account
from privledger.explorer.auth import MAX_CHALLENGES
from tests.e2e.conftest import Running
from tests.e2e.test_explorer import NODE, REGULATOR, challenge, explorer, sign

pytestmark = pytest.mark.security

ATTACKER = "127.0.0.2"  # a host of its own, as in tests/security/test_anonymous_calls.py
THREADS = 16


def _flood(base_url: str, stop: threading.Event, answered: list[int]) -> None:
    transport = httpx.HTTPTransport(local_address=ATTACKER)
    with httpx.Client(base_url=base_url, transport=transport, timeout=60) as client:
        while not stop.is_set():
            answered.append(client.post("/explorer/api/challenge").status_code)


def test_a_flood_of_challenges_is_throttled_and_the_auditor_still_logs_in(
    running: Running,
) -> None:
    auditor = dev_account(REGULATOR)
    with explorer(running) as client:
        text = challenge(client)  # the auditor's wallet asks the auditor to sign this
        stop, answered = threading.Event(), []
        threads = [
            threading.Thread(target=_flood, args=(running.nodes[NODE].url, stop, answered))
            for _ in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        try:  # until the node throttles the flood, or it had time to drop every older challenge
            while 429 not in answered and answered.count(200) < MAX_CHALLENGES:
                stop.wait(0.2)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        body = {"challenge": text, "address": auditor.address, "signature": sign(auditor, text)}
        response = client.post("/explorer/api/login", json=body)
        again = client.get("/explorer/login")  # the auditor's own address is not throttled
    assert response.status_code == 200, f"{response.text} after {answered.count(200)} challenges"
    assert 429 in answered and answered.count(200) < 1000, answered.count(200)
    assert again.status_code == 200
