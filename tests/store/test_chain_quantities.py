"""Every chain quantity a node stores fits 64 bits, on PostgreSQL as on SQLite (``store_url``):
an expiry after January 2038 (past 2^31 seconds), gas and block numbers beyond 2^31. PostgreSQL's
INTEGER is 32-bit; SQLite's hides it (migrations 0008, 0009)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Integer, inspect
from sqlmodel import Session, select

from privledger.store.db import make_engine
from privledger.store.models import ChainBlock, ChainTx, IndexerCursor, InteropContract

AFTER_2038 = int(datetime(2040, 6, 1, tzinfo=UTC).timestamp())
BEYOND_32_BITS = 2**40 + 7


def test_chain_quantities_past_32_bits_round_trip(store_url: str) -> None:
    engine = make_engine(store_url)
    with Session(engine) as session:
        session.add(
            InteropContract(
                contract_id="c1",
                applicant_org=1,
                partner_org=2,
                status="APPROVED",
                expired_time=AFTER_2038,
            )
        )
        session.add(
            ChainBlock(
                number=BEYOND_32_BITS,
                hash="0x01",
                parent_hash="0x00",
                timestamp=AFTER_2038,
                miner="0x02",
                gas_used=BEYOND_32_BITS,
                tx_count=1,
            )
        )
        session.add(
            ChainTx(
                hash="0x03",
                block_number=BEYOND_32_BITS,
                tx_index=0,
                sender="0x04",
                nonce=BEYOND_32_BITS,
                value_wei=str(10**30),
                function="transfer",
                args={},
                status=1,
                gas_used=BEYOND_32_BITS,
            )
        )
        session.add(IndexerCursor(name="n", next_block=BEYOND_32_BITS + 1, last_hash="0x01"))
        session.commit()
    with Session(engine) as session:
        contract = session.exec(select(InteropContract)).one()
        assert contract.expired_time == AFTER_2038
        expired = select(InteropContract).where(InteropContract.expired_time < AFTER_2038)
        assert session.exec(expired).all() == []
        block = session.exec(select(ChainBlock)).one()
        assert (block.number, block.timestamp, block.gas_used) == (
            BEYOND_32_BITS,
            AFTER_2038,
            BEYOND_32_BITS,
        )
        tx = session.exec(select(ChainTx)).one()
        assert (tx.block_number, tx.nonce, tx.gas_used) == (BEYOND_32_BITS,) * 3
        assert session.exec(select(IndexerCursor)).one().next_block == BEYOND_32_BITS + 1
    if engine.dialect.name == "postgresql":  # no 32-bit integer column is left anywhere
        inspector = inspect(engine)
        narrow = [
            f"{table}.{column['name']}"
            for table in inspector.get_table_names()
            for column in inspector.get_columns(table)
            if isinstance(column["type"], Integer) and not isinstance(column["type"], BigInteger)
        ]
        assert narrow == []
    engine.dispose()
