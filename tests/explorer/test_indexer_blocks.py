"""The indexer copies blocks and transactions with their calls decoded from our ABIs, and the
references the explorer searches by, once each across restarts (on SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from privledger.evm.indexer import EventIndexer
from privledger.store.db import make_engine
from privledger.store.models import ChainBlock, ChainRef, ChainTx
from tests.evm.conftest import Consortium, consortium

__all__ = ["consortium"]  # the fixture, shared with tests/evm


def test_blocks_transactions_and_references_are_indexed_once(
    consortium: Consortium, store_url: str
) -> None:
    admin = consortium.admin
    EventIndexer(admin.client.w3, admin.deployment, admin.artifacts, make_engine(store_url)).sync()
    parent = consortium.dataset(consortium.bank_a)
    child = consortium.dataset(consortium.bank_a, parents=(parent,), upstream_bps=500)
    restarted = EventIndexer(
        admin.client.w3, admin.deployment, admin.artifacts, make_engine(store_url)
    )
    assert restarted.sync() == 2  # two DatasetRegistered events, nothing twice

    with Session(make_engine(store_url)) as session:
        blocks = list(session.exec(select(ChainBlock).order_by(col(ChainBlock.number))))
        numbers = [b.number for b in blocks]
        assert numbers == list(range(admin.deployment.deploy_block, numbers[-1] + 1))
        txs = list(session.exec(select(ChainTx)))
        assert len(txs) == sum(b.tx_count for b in blocks)
        created = {t.contract for t in txs if t.function == "constructor"}
        assert {"OrgRegistry", "TaskLedger", "BatchAnchor"} <= created
        registration = session.exec(
            select(ChainTx).where(ChainTx.function == "register").order_by(col(ChainTx.nonce))
        ).all()[-1]
        assert registration.contract == "DataRegistry" and registration.status == 1
        assert registration.sender == consortium.bank_a.address
        assert registration.args["parents"] == ["0x" + parent.hex()]
        assert registration.args["upstreamBps"] == 500
        refs = session.exec(select(ChainRef).where(ChainRef.tx_hash == registration.hash)).all()
        named = {(r.kind, r.value, r.log_index) for r in refs}
        assert ("dataset", "0x" + parent.hex(), -1) in named  # the call names its parent
        assert ("dataset", "0x" + child.hex(), 0) in named  # the event names the new dataset
        assert ("org", str(consortium.bank_a.org_id), 0) in named
        grants = session.exec(select(ChainTx).where(ChainTx.function == "grantRoles")).all()
        assert grants and all(t.contract == "OrgRegistry" for t in grants)
