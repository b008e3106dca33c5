"""The indexer copies events into the node database incrementally (on SQLite and on PostgreSQL:
``store_url``)."""

from __future__ import annotations

from sqlmodel import Session, select

from privledger.evm.indexer import EventIndexer
from privledger.store.db import make_engine
from privledger.store.models import ChainEvent

from .conftest import Consortium


def _events(engine_url: str) -> list[ChainEvent]:
    engine = make_engine(engine_url)
    try:
        with Session(engine) as session:
            return list(
                session.exec(
                    select(ChainEvent).order_by(ChainEvent.block_number, ChainEvent.log_index)
                )
            )
    finally:
        engine.dispose()


def test_indexer_copies_events_incrementally_across_restarts(
    consortium: Consortium, store_url: str
) -> None:
    admin = consortium.admin
    indexer = EventIndexer(
        admin.client.w3, admin.deployment, admin.artifacts, make_engine(store_url)
    )
    first = indexer.sync()
    names = [event.event for event in _events(store_url)]
    assert first == len(names) > 0
    assert names.count("OrgRegistered") >= 3
    assert indexer.sync() == 0  # nothing new, nothing duplicated

    dataset = consortium.dataset(consortium.bank_a)
    # a new indexer on the same database (a restarted node) continues from the stored cursor
    restarted = EventIndexer(
        admin.client.w3, admin.deployment, admin.artifacts, make_engine(store_url)
    )
    assert restarted.sync() == 1
    stored = _events(store_url)
    assert len(stored) == first + 1
    registered = stored[-1]
    assert (registered.contract, registered.event) == ("DataRegistry", "DatasetRegistered")
    assert registered.args["datasetId"] == "0x" + dataset.hex()
    assert registered.args["ownerOrg"] == consortium.bank_a.org_id


def test_sync_for_indexes_only_when_the_new_blocks_hold_that_event(
    consortium: Consortium, store_url: str
) -> None:
    admin = consortium.admin
    engine = make_engine(store_url)
    indexer = EventIndexer(admin.client.w3, admin.deployment, admin.artifacts, engine)
    indexer.sync_for("GrantRegistry", "GrantIssued")  # a first call reads everything
    synced = indexer.next_block()
    dataset = consortium.dataset(consortium.bank_a)  # a block without a grant
    indexer.sync_for("GrantRegistry", "GrantIssued")
    assert indexer.next_block() == synced  # left for the next full sync
    grant = consortium.grant(dataset, consortium.bank_a, consortium.telecom)
    indexer.sync_for("GrantRegistry", "GrantIssued")
    assert indexer.next_block() == consortium.w3.eth.block_number + 1
    issued = [e for e in _events(store_url) if e.event == "GrantIssued"]
    assert issued[-1].args["grantId"] == "0x" + grant.hex()
