"""What a node's API processes share through PostgreSQL: nonces handed out gapless and once
each under concurrency, an index lock one holder at a time, task changes relayed between them."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from privledger.store.db import make_engine
from privledger.store.locks import AdvisoryLock
from privledger.store.nonces import SharedNonces
from privledger.store.notices import TaskNotices, payloads
from privledger.store.watch import TaskWatch
from tests.conftest import new_database

pytestmark = pytest.mark.postgres

ACCOUNT = "0x" + "ab" * 20


def test_nonces_are_gapless_and_unique_across_engines(request: pytest.FixtureRequest) -> None:
    url = new_database(request, "shared_nonces")
    engines = [make_engine(url) for _ in range(2)]  # as two processes would hold them
    books = [SharedNonces(engine) for engine in engines]
    with books[0].held(ACCOUNT) as slot:
        assert slot.value is None  # nothing known yet: read from the chain
        slot.value = 7

    def take(index: int) -> int:
        with books[index % 2].held(ACCOUNT) as slot:
            assert slot.value is not None
            nonce = slot.value
            time.sleep(0.001)  # a holder that signs and sends meanwhile
            slot.value = nonce + 1
            return nonce

    with ThreadPoolExecutor(max_workers=8) as pool:
        taken = list(pool.map(take, range(60)))
    assert sorted(taken) == list(range(7, 67))
    with books[1].held(ACCOUNT) as slot:  # a refusal empties it: the next holder resynchronises
        slot.value = None
    with books[0].held(ACCOUNT) as slot:
        assert slot.value is None
    for engine in engines:
        engine.dispose()


def test_advisory_lock_has_one_holder_across_engines(request: pytest.FixtureRequest) -> None:
    url = new_database(request, "advisory_lock")
    engines = [make_engine(url) for _ in range(2)]
    locks = [AdvisoryLock(engine, "index:x") for engine in engines]
    inside, most = 0, 0
    guard = threading.Lock()

    def hold(index: int) -> None:
        nonlocal inside, most
        with locks[index % 2]:
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.005)
            with guard:
                inside -= 1

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(hold, range(24)))
    assert most == 1
    for engine in engines:
        engine.dispose()


def test_task_changes_reach_the_other_process(request: pytest.FixtureRequest) -> None:
    url = new_database(request, "task_notices")
    engine = make_engine(url)
    here, there = TaskWatch(), TaskWatch()
    sender, receiver = TaskNotices(engine, here), TaskNotices(engine, there)
    receiver.pid = sender.pid + 1  # as another process: its own notices are not echoed back
    sender.start()
    receiver.start()

    async def wait_for_change() -> float:
        started = time.monotonic()
        with there.watching(12) as changed:
            await asyncio.get_running_loop().run_in_executor(None, here.notify, [12, 13])
            await asyncio.wait_for(changed.wait(), 10)
        return time.monotonic() - started

    try:
        assert asyncio.run(wait_for_change()) < 5
    finally:
        sender.stop()
        receiver.stop()
        engine.dispose()


def test_payloads_fit_a_notification() -> None:
    many = set(range(10**6, 10**6 + 3000))
    found = payloads(42, many)
    assert len(found) > 1 and all(len(p) <= 7000 for p in found)
    assert {int(i) for p in found for i in p.split(":")[1].split(",")} == many
