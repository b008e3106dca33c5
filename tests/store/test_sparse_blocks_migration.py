"""Migration 0012 on an index made before it: the cursor gets the hash of the block before it,
and the empty blocks already stored go, but the index's first block (on SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from privledger.store.migrate import alembic_config, upgrade

BLOCKS = [(10, 1), (11, 0), (12, 2), (13, 0), (14, 0)]  # (number, tx_count): 10 is the first


def test_the_migration_keeps_the_cursor_hash_and_drops_stored_empty_blocks(store_url: str) -> None:
    engine = create_engine(store_url)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0011")
        for number, count in BLOCKS:
            connection.execute(
                text(
                    "INSERT INTO chain_block (number, hash, parent_hash, timestamp, miner, "
                    "gas_used, tx_count) VALUES (:n, :h, :p, 0, '0x0', 0, :c)"
                ),
                {"n": number, "h": f"0x{number:02x}", "p": f"0x{number - 1:02x}", "c": count},
            )
        connection.execute(text("INSERT INTO indexer_cursor VALUES ('c', 15)"))
    upgrade(engine)
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT number FROM chain_block ORDER BY number")).all()
        cursor = connection.execute(text("SELECT next_block, last_hash FROM indexer_cursor")).one()
    assert [row[0] for row in kept] == [10, 12]
    assert tuple(cursor) == (15, "0x0e")  # block 14's hash, though block 14 is gone now
    engine.dispose()
