"""The index does not grow with empty blocks (a QBFT chain seals one every minute when idle), yet
notices a chain that changed where it held only empty blocks: the cursor keeps the hash of the
last block read. On SQLite and on PostgreSQL (``store_url``)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from privledger.evm.indexer import EventIndexer
from privledger.store.db import make_engine
from privledger.store.models import ChainBlock, ChainEvent

from .conftest import Consortium


def _rpc(consortium: Consortium, method: str, *params: Any) -> Any:
    return consortium.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


def _stored(url: str) -> tuple[list[int], int]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            numbers = list(session.exec(select(ChainBlock.number).order_by(col(ChainBlock.number))))
            events = len(session.exec(select(ChainEvent)).all())
    finally:
        engine.dispose()
    return numbers, events


def test_empty_blocks_are_read_not_stored_and_a_change_among_them_is_noticed(
    consortium: Consortium, store_url: str
) -> None:
    admin, w3 = consortium.admin, consortium.w3
    engine = make_engine(store_url)
    indexer = EventIndexer(admin.client.w3, admin.deployment, admin.artifacts, engine)
    indexer.sync()
    stored_before, events_before = _stored(store_url)
    _rpc(consortium, "anvil_mine", hex(20))  # an idle chain
    snapshot = _rpc(consortium, "evm_snapshot")
    _rpc(consortium, "anvil_mine", hex(3))
    assert indexer.sync() == 0
    assert indexer.next_block() == w3.eth.block_number + 1
    assert _stored(store_url) == (stored_before, events_before)  # 23 blocks read, none stored

    # the chain goes back to the snapshot, and where empty blocks were read it now holds a
    # transaction: the index cannot see that from its stored blocks, only from its cursor
    _rpc(consortium, "evm_revert", snapshot)
    consortium.dataset(consortium.bank_a)
    assert w3.eth.block_number < indexer.next_block() - 1
    assert indexer.sync() == 1
    numbers, events = _stored(store_url)
    assert numbers == [*stored_before, w3.eth.block_number] and events == events_before + 1
    _rpc(consortium, "anvil_mine", hex(2))
    consortium.dataset(consortium.bank_b)  # same height as an empty block read before
    assert indexer.sync() == 1
    for number in _stored(store_url)[0]:
        assert w3.eth.get_block(number)["transactions"] or number == admin.deployment.deploy_block
