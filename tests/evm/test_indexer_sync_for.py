"""A request that needs one kind of event fresh asks the chain for it over the blocks not indexed
yet; in an API process beside the worker's, whose indexer rarely syncs itself, those blocks
start where the worker's index got to, not where this process last synced (a range, and a cost
to the chain, that grew with every block)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from privledger.evm.indexer import STALE_CURSOR_BLOCKS, EventIndexer
from privledger.store.db import make_engine, sqlite_url

from .conftest import Consortium


def test_a_request_asks_from_where_the_shared_index_got(
    consortium: Consortium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = consortium.admin
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    worker, api = (
        EventIndexer(admin.client.w3, admin.deployment, admin.artifacts, engine) for _ in range(2)
    )
    api.sync()  # its first request
    asked: list[int] = []
    batch = api._rpc.batch

    def spy(calls: list[tuple[str, list[Any]]]) -> list[Any]:
        asked.extend(
            int(params[0]["fromBlock"], 16) for method, params in calls if method == "eth_getLogs"
        )
        return batch(calls)

    monkeypatch.setattr(api._rpc, "batch", spy)
    consortium.w3.provider.make_request("anvil_mine", [hex(STALE_CURSOR_BLOCKS + 8)])  # type: ignore[arg-type]
    worker.sync()
    for _ in range(2):
        api.sync_for("GrantRegistry", "GrantIssued")
    assert asked[-1] == worker.next_block()
