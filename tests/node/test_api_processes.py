"""A node of several API processes: refused where they could not share its state; its
processes take gapless, unique nonces from the table they share."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.queues import Queue
from pathlib import Path

import pytest

from privledger.config import NodeSettings
from privledger.node.context import NodeSetupError
from privledger.node.processes import ProcessNonces, check_api_workers, per_process_limits

PG = "postgresql+psycopg://u:p@127.0.0.1:5432/node"
ACCOUNT = "0x" + "ab" * 20


def test_several_api_processes_need_postgresql(tmp_path: Path) -> None:
    with pytest.raises(NodeSetupError, match="need the node's store in PostgreSQL"):
        check_api_workers(NodeSettings(org="a", home=tmp_path, api_workers=2, peer_port=9001))
    check_api_workers(NodeSettings(org="a", home=tmp_path))  # one process: SQLite is fine


def test_several_api_processes_need_a_peer_port_of_their_own(tmp_path: Path) -> None:
    for peer_port in (None, 8000):
        settings = NodeSettings(
            org="a", home=tmp_path, api_workers=2, port=8000, peer_port=peer_port, database_url=PG
        )
        with pytest.raises(NodeSetupError, match="peer port of their own"):
            check_api_workers(settings)
    settings = NodeSettings(
        org="a", home=tmp_path, api_workers=2, port=8000, peer_port=9001, database_url=PG
    )
    check_api_workers(settings)
    assert settings.endpoint == "http://127.0.0.1:9001"  # published on chain


def test_each_process_counts_its_share_of_the_anonymous_limit(tmp_path: Path) -> None:
    settings = NodeSettings(
        org="a", home=tmp_path, api_workers=4, anonymous_calls_per_s=10, anonymous_burst=100
    )
    share = per_process_limits(settings)
    assert (share.anonymous_calls_per_s, share.anonymous_burst) == (2.5, 25)


def _take_nonces(nonces: ProcessNonces, count: int, out: Queue[int]) -> None:
    """In another process: ``count`` nonces from four threads, as API requests would take them."""

    def take(_: int) -> None:
        with nonces.held(ACCOUNT) as slot:
            assert slot.value is not None
            nonce = slot.value
            time.sleep(0.0005)  # signs and sends meanwhile
            slot.value = nonce + 1
        out.put(nonce)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(take, range(count)))


def test_processes_take_gapless_unique_nonces() -> None:
    context = multiprocessing.get_context("spawn")
    nonces = ProcessNonces(context, slots=4)
    with nonces.held(ACCOUNT) as slot:
        assert slot.value is None  # nothing known yet: read from the chain
        slot.value = 7
    taken: Queue[int] = context.Queue()
    other = context.Process(target=_take_nonces, args=(nonces, 40, taken))
    other.start()
    _take_nonces(nonces, 40, taken)  # and the primary beside it
    other.join(timeout=120)
    assert other.exitcode == 0
    assert sorted(taken.get(timeout=5) for _ in range(80)) == list(range(7, 87))
    with nonces.held(ACCOUNT) as slot:  # a refusal empties it: the next holder resynchronises
        slot.value = None
    with nonces.held(ACCOUNT) as slot:
        assert slot.value is None
    with nonces.held("0x" + "cd" * 20) as slot:  # another account, a slot of its own
        assert slot.value is None
