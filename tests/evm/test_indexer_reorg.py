"""The index follows the chain when the chain changes its mind: blocks reorganised away or a chain
reverted to an earlier state are forgotten with their transactions, events and references, and
the new blocks are read in their place (on SQLite and on PostgreSQL: ``store_url``). A chain that
lost the deployment's own blocks is a ChainReset (a 503 in the API), never a silent mix."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from sqlmodel import Session, select

from privledger.evm.deploy import Deployment
from privledger.evm.indexer import ChainReset, EventIndexer, Forgotten
from privledger.store.db import make_engine
from privledger.store.models import ChainBlock, ChainEvent, ChainRef, ChainTx

from .conftest import Consortium


def _rpc(consortium: Consortium, method: str, *params: Any) -> Any:
    return consortium.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


def _indexer(consortium: Consortium, store_url: str, deployment: Deployment) -> EventIndexer:
    admin = consortium.admin
    return EventIndexer(admin.client.w3, deployment, admin.artifacts, make_engine(store_url))


def _registered(engine_url: str) -> set[str]:
    engine = make_engine(engine_url)
    try:
        with Session(engine) as session:
            events = session.exec(
                select(ChainEvent).where(ChainEvent.event == "DatasetRegistered")
            ).all()
            return {event.args["datasetId"] for event in events}
    finally:
        engine.dispose()


def _event_ids(engine_url: str) -> list[int]:
    engine = make_engine(engine_url)
    try:
        with Session(engine) as session:
            return [event.id or 0 for event in session.exec(select(ChainEvent))]
    finally:
        engine.dispose()


def _assert_index_is_the_chain(consortium: Consortium, engine_url: str, first: int) -> None:
    """Every block from ``first`` on that holds transactions is stored as the chain has it (an
    empty one is not stored), and nothing beyond its head is kept."""
    w3, head = consortium.w3, consortium.w3.eth.block_number
    engine = make_engine(engine_url)
    try:
        with Session(engine) as session:
            stored = {b.number: b.hash for b in session.exec(select(ChainBlock))}
            beyond = [
                session.exec(select(model).where(model.block_number > head)).first()  # type: ignore[attr-defined]
                for model in (ChainTx, ChainEvent, ChainRef)
            ]
    finally:
        engine.dispose()
    assert max(stored) <= head and beyond == [None, None, None]
    for number in range(first, head + 1):
        block = w3.eth.get_block(number)
        if block["transactions"] or number == first:
            assert stored[number] == block["hash"].to_0x_hex(), number
        else:
            assert number not in stored, number


def test_a_chain_reverted_to_an_earlier_state_is_followed(
    consortium: Consortium, store_url: str
) -> None:
    admin = consortium.admin
    indexer = _indexer(consortium, store_url, admin.deployment)
    indexer.sync()
    before = consortium.w3.eth.block_number
    snapshot = _rpc(consortium, "evm_snapshot")
    gone = "0x" + consortium.dataset(consortium.bank_a).hex()
    consortium.dataset(consortium.bank_a)
    indexer.sync()
    assert gone in _registered(store_url)

    assert _rpc(consortium, "evm_revert", snapshot) is True  # the chain goes back two blocks
    assert indexer.sync() == 0
    assert indexer.next_block() == before + 1
    assert gone not in _registered(store_url)
    _assert_index_is_the_chain(consortium, store_url, admin.deployment.deploy_block)


def test_a_reorganisation_replaces_the_blocks_it_took_away(
    consortium: Consortium, store_url: str
) -> None:
    admin = consortium.admin
    indexer = _indexer(consortium, store_url, admin.deployment)
    snapshot = _rpc(consortium, "evm_snapshot")
    gone = "0x" + consortium.dataset(consortium.bank_a).hex()
    consortium.dataset(consortium.bank_a)
    indexer.sync()
    stored_head = consortium.w3.eth.block_number

    _rpc(consortium, "evm_revert", snapshot)
    # another branch, longer than the one indexed: bank-b's dataset, then empty blocks
    kept = "0x" + consortium.dataset(consortium.bank_b).hex()
    _rpc(consortium, "anvil_mine", hex(3))
    assert consortium.w3.eth.block_number > stored_head
    assert indexer.sync() == 1  # only the new branch's event
    registered = _registered(store_url)
    assert kept in registered and gone not in registered
    _assert_index_is_the_chain(consortium, store_url, admin.deployment.deploy_block)
    assert indexer.sync() == 0  # and it stays put


def test_a_chain_that_lost_the_deployment_is_a_chain_reset(
    consortium: Consortium, store_url: str
) -> None:
    """An index of a deployment made after the snapshot (as if the chain restarted before it)."""
    admin = consortium.admin
    snapshot = _rpc(consortium, "evm_snapshot")
    consortium.dataset(consortium.bank_a)
    later = replace(admin.deployment, deploy_block=consortium.w3.eth.block_number)
    indexer = _indexer(consortium, store_url, later)
    consortium.dataset(consortium.bank_a)
    indexer.sync()

    _rpc(consortium, "evm_revert", snapshot)
    _rpc(consortium, "anvil_mine", hex(4))  # a different block where the "deployment" was
    with pytest.raises(ChainReset, match="no longer holds block"):
        indexer.sync()


def test_a_reorganisation_to_the_same_height_is_seen_and_told(
    consortium: Consortium, store_url: str
) -> None:
    """anvil_reorg replaces the last blocks by as many empty ones: the head's number stays, its
    hash changes; listeners learn the forgotten transactions and the newest event kept."""
    admin = consortium.admin
    indexer = _indexer(consortium, store_url, admin.deployment)
    told: list[Forgotten] = []
    indexer.on_rewind(told.append)
    indexer.sync()
    kept_events = _event_ids(store_url)
    gone = "0x" + consortium.dataset(consortium.bank_a).hex()
    receipt_block = consortium.w3.eth.block_number
    gone_tx = consortium.w3.eth.get_block(receipt_block)["transactions"][0].to_0x_hex()
    indexer.sync()
    assert gone in _registered(store_url)

    _rpc(consortium, "anvil_reorg", 1, [])
    assert consortium.w3.eth.block_number == receipt_block
    assert indexer.sync() == 0
    assert gone not in _registered(store_url)
    _assert_index_is_the_chain(consortium, store_url, admin.deployment.deploy_block)
    assert [(f.fork, f.transactions, f.last_event_id) for f in told] == [
        (receipt_block, frozenset({gone_tx}), max(kept_events))
    ]


def test_nonces_taken_back_by_a_reorganisation_are_filled(consortium: Consortium) -> None:
    """The chain takes back two mined transactions of bank-a: its book is two nonces ahead, and a
    transaction signed now would wait behind the gap; closing the gaps fills both nonces with
    empty transactions, and the next transaction is mined at once."""
    client = consortium.bank_a.ledger.client
    consortium.dataset(consortium.bank_a)
    consortium.dataset(consortium.bank_a)
    book = client.next_nonce()
    _rpc(consortium, "anvil_reorg", 2, [])
    assert consortium.w3.eth.get_transaction_count(client.address, "pending") == book - 2
    assert client.close_nonce_gaps() == 2
    assert client.close_nonce_gaps() == 0  # nothing left to fill
    started = time.monotonic()
    consortium.dataset(consortium.bank_a)
    assert time.monotonic() - started < 5
    assert consortium.w3.eth.get_transaction_count(client.address) == book + 1
