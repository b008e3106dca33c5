"""A task's usage window: CPU of every thread of the process, the memory high-water mark reset
when it opens, the channels' payload bytes, and whether another task's window overlapped."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from sqlmodel import Session

from privledger.explorer.resources import resource_totals
from privledger.node.usage import UsageWindow, recorded_usage
from privledger.protocols.channel import channel_pair
from privledger.store.db import make_engine
from privledger.store.models import LocalTask


def _burn(seconds: float) -> None:
    ends = time.thread_time() + seconds
    digest = b""
    while time.thread_time() < ends:
        digest = hashlib.sha256(digest).digest()


def test_a_window_counts_every_threads_cpu_the_peak_memory_and_the_payload_bytes() -> None:
    ours, theirs = channel_pair()
    with UsageWindow() as window:
        helper = threading.Thread(target=_burn, args=(0.2,))  # e.g. a protocol's own pool
        helper.start()
        _burn(0.1)
        helper.join()
        block = bytearray(64 << 20)  # touched: resident
        ours.send(b"x" * 1000)
        theirs.send(b"y" * 10)
        ours.recv()
        usage = window.close([ours])
    del block
    assert usage.cpu_seconds >= 0.29  # both threads
    assert usage.peak_rss_bytes >= 64 << 20
    assert (usage.bytes_sent, usage.bytes_received) == (1000, 10)
    assert not usage.shared
    with pytest.raises(RuntimeError, match="not open"):
        window.close([ours])


def test_the_high_water_mark_is_reset_for_each_task_that_runs_alone() -> None:
    with UsageWindow() as window:
        big = bytearray(96 << 20)
        first = window.close([])
    del big
    with UsageWindow() as window:
        second = window.close([])
    assert second.peak_rss_bytes < first.peak_rss_bytes - (64 << 20)


def test_overlapping_windows_are_marked_shared() -> None:
    with UsageWindow() as outer:
        with UsageWindow() as inner:
            assert inner.close([]).shared  # opened while outer was open
        assert outer.close([]).shared  # another opened meanwhile
    with UsageWindow() as alone:
        assert not alone.close([]).shared


def test_a_window_left_by_a_failure_records_nothing_and_closes() -> None:
    with pytest.raises(ValueError), UsageWindow():
        raise ValueError("the task failed")
    with UsageWindow() as next_task:
        assert not next_task.close([]).shared


def test_recorded_usage_and_the_cockpit_totals(store_url: str) -> None:
    engine = make_engine(store_url)
    with Session(engine) as session:
        session.add(LocalTask(task_id=1, spec_hash="0x01", state="failed"))
        for task_id, shared in ((2, False), (3, True)):
            session.add(
                LocalTask(
                    task_id=task_id,
                    spec_hash="0x02",
                    state="anchored",
                    cpu_seconds=1.5,
                    peak_rss_bytes=task_id << 20,
                    bytes_sent=100,
                    bytes_received=200,
                    usage_shared=shared,
                )
            )
        session.commit()
        assert recorded_usage(session, 1) is None and recorded_usage(session, 9) is None
        usage = recorded_usage(session, 3)
        assert usage is not None and usage.shared and usage.bytes_received == 200
        assert resource_totals(session) == {
            "tasks": 2,
            "cpu_seconds": 3.0,
            "bytes_sent": 200,
            "bytes_received": 400,
            "peak_rss_bytes": 3 << 20,
            "shared_tasks": 1,
        }
    engine.dispose()
