"""What a node's API processes share through PostgreSQL: an index lock one holder at a time,
task changes relayed between them."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from privledger.store.db import make_engine
from privledger.store.locks import AdvisoryLock
from privledger.store.notices import TaskNotices, payloads
from privledger.store.watch import TaskWatch
from tests.conftest import new_database

pytestmark = pytest.mark.postgres


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
