"""Database tables of a node."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


class ChainEvent(SQLModel, table=True):
    """One decoded contract event, copied from the chain by the indexer."""

    __tablename__ = "chain_event"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_chain_event_log"),)

    id: int | None = Field(default=None, primary_key=True)
    block_number: int = Field(index=True)
    block_hash: str
    tx_hash: str = Field(index=True)
    log_index: int
    contract: str = Field(index=True)
    address: str
    event: str = Field(index=True)
    args: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class IndexerCursor(SQLModel, table=True):
    """How far the indexer has copied events: the next block to read, per chain and deployment."""

    __tablename__ = "indexer_cursor"

    name: str = Field(primary_key=True)
    next_block: int
