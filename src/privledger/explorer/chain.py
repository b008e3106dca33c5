"""Blocks and transactions from the explorer index, newest first, paged by keyset cursors.

A cursor is the position of the last row shown (``block`` or ``block.txIndex``); the next page
holds the rows before it, so every page costs one index range scan however deep it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, tuple_
from sqlmodel import Session, col, select

from privledger.store.models import ChainBlock, ChainEvent, ChainTx
from privledger.wire.numerals import ascii_number

from .web import BadInput

PAGE_SIZE = 25


@dataclass
class Totals:
    blocks: int
    transactions: int
    events: int
    head: int | None


def totals(session: Session) -> Totals:
    head = session.exec(select(func.max(ChainBlock.number))).one()
    return Totals(
        blocks=session.exec(select(func.count()).select_from(ChainBlock)).one(),
        transactions=session.exec(select(func.count()).select_from(ChainTx)).one(),
        events=session.exec(select(func.count()).select_from(ChainEvent)).one(),
        head=head,
    )


def block_cursor(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    number = ascii_number(text)
    if number is None:
        raise BadInput(f"{text!r} is not a block cursor: a block number")
    return number


def tx_cursor(text: str) -> tuple[int, int] | None:
    text = text.strip()
    if not text:
        return None
    block_text, _, index_text = text.partition(".")
    block, index = ascii_number(block_text), ascii_number(index_text, max_digits=9)
    if block is None or index is None:
        raise BadInput(f"{text!r} is not a transaction cursor: block.index, e.g. 120.0")
    return block, index


def blocks_page(
    session: Session, before: int | None, limit: int = PAGE_SIZE
) -> tuple[list[ChainBlock], str | None]:
    query = select(ChainBlock).order_by(col(ChainBlock.number).desc()).limit(limit + 1)
    if before is not None:
        query = query.where(ChainBlock.number < before)
    rows = list(session.exec(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].number) if more else None)


def block(session: Session, number: int) -> ChainBlock | None:
    return session.get(ChainBlock, number)


def block_by_hash(session: Session, block_hash: str) -> ChainBlock | None:
    return session.exec(select(ChainBlock).where(ChainBlock.hash == block_hash)).first()


def txs_page(
    session: Session,
    before: tuple[int, int] | None,
    *,
    sender: str | None = None,
    limit: int = PAGE_SIZE,
) -> tuple[list[ChainTx], str | None]:
    """Transactions newest first; ``sender`` also matches the contract an account created."""
    query = select(ChainTx)
    if sender is not None:
        query = query.where(ChainTx.sender == sender)
    if before is not None:
        query = query.where(tuple_(col(ChainTx.block_number), col(ChainTx.tx_index)) < before)
    query = query.order_by(col(ChainTx.block_number).desc(), col(ChainTx.tx_index).desc())
    rows = list(session.exec(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (f"{rows[-1].block_number}.{rows[-1].tx_index}" if more else None)


def block_txs(session: Session, number: int) -> list[ChainTx]:
    return list(
        session.exec(
            select(ChainTx).where(ChainTx.block_number == number).order_by(col(ChainTx.tx_index))
        )
    )


def tx(session: Session, tx_hash: str) -> ChainTx | None:
    return session.get(ChainTx, tx_hash)


def tx_events(session: Session, tx_hash: str) -> list[ChainEvent]:
    return list(
        session.exec(
            select(ChainEvent)
            .where(ChainEvent.tx_hash == tx_hash)
            .order_by(col(ChainEvent.log_index))
        )
    )


def sent_count(session: Session, address: str) -> int:
    return session.exec(
        select(func.count()).select_from(ChainTx).where(ChainTx.sender == address)
    ).one()


def touched(session: Session, address: str) -> bool:
    """Whether ``address`` sent or received any indexed transaction."""
    found = session.exec(
        select(ChainTx.hash)
        .where(or_(col(ChainTx.sender) == address, col(ChainTx.to) == address))
        .limit(1)
    )
    return found.first() is not None
