"""Look-ups through the reference index (``ChainRef``): the calls and events that name a task,
dataset, grant, org, batch or account."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import and_
from sqlmodel import Session, col, select

from privledger.store.models import ChainEvent, ChainRef, ChainTx


def _unique(events: Iterable[ChainEvent]) -> list[ChainEvent]:
    """Each event once (an event naming a value twice joins twice), in the order given."""
    return list({event.id: event for event in events}.values())


def events_about(
    session: Session,
    kind: str,
    values: Iterable[str],
    names: Sequence[str] | None = None,
    *,
    newest: int | None = None,
) -> list[ChainEvent]:
    """Events naming any of ``values`` (of ``kind``), optionally only ``names``, in chain order;
    with ``newest``, only that many of the latest, newest first."""
    wanted = list(dict.fromkeys(values))
    if not wanted:
        return []
    query = (
        select(ChainEvent)
        .join(
            ChainRef,
            and_(
                col(ChainRef.tx_hash) == col(ChainEvent.tx_hash),
                col(ChainRef.log_index) == col(ChainEvent.log_index),
            ),
        )
        .where(ChainRef.kind == kind, col(ChainRef.value).in_(wanted), ChainRef.log_index >= 0)
    )
    if names is not None:
        query = query.where(col(ChainRef.name).in_(names))
    if newest is not None:
        query = query.order_by(col(ChainRef.block_number).desc(), col(ChainRef.id).desc())
        return _unique(session.exec(query.limit(newest)))
    query = query.order_by(col(ChainEvent.block_number), col(ChainEvent.log_index))
    return _unique(session.exec(query))


def calls_about(
    session: Session, kind: str, value: str, names: Sequence[str] | None = None
) -> list[ChainTx]:
    """Transactions whose call arguments name ``value``, in chain order."""
    query = (
        select(ChainTx)
        .join(ChainRef, col(ChainRef.tx_hash) == col(ChainTx.hash))
        .where(ChainRef.kind == kind, ChainRef.value == value, ChainRef.log_index == -1)
    )
    if names is not None:
        query = query.where(col(ChainRef.name).in_(names))
    query = query.order_by(col(ChainTx.block_number), col(ChainTx.tx_index))
    return list({tx.hash: tx for tx in session.exec(query)}.values())


def call_refs(session: Session, tx_hashes: Iterable[str], kind: str) -> dict[str, list[str]]:
    """For each transaction, the values of ``kind`` its call names, in argument order."""
    hashes = list(dict.fromkeys(tx_hashes))
    found: dict[str, list[str]] = {h: [] for h in hashes}
    if not hashes:
        return found
    # only the transaction hash in SQL: it is the selective index, whatever the planner guesses
    rows = session.exec(
        select(ChainRef.tx_hash, ChainRef.kind, ChainRef.value, ChainRef.log_index)
        .where(col(ChainRef.tx_hash).in_(hashes))
        .order_by(col(ChainRef.id))
    )
    for tx_hash, ref_kind, value, log_index in rows:
        if ref_kind == kind and log_index == -1:
            found[tx_hash].append(value)
    return found


def events_in(session: Session, tx_hashes: Iterable[str], name: str) -> list[ChainEvent]:
    hashes = list(dict.fromkeys(tx_hashes))
    if not hashes:
        return []
    events = session.exec(
        select(ChainEvent)
        .where(col(ChainEvent.tx_hash).in_(hashes))
        .order_by(col(ChainEvent.block_number), col(ChainEvent.log_index))
    )
    return [event for event in events if event.event == name]


def exists(session: Session, kind: str, value: str, name: str | None = None) -> bool:
    query = select(ChainRef.id).where(ChainRef.kind == kind, ChainRef.value == value)
    if name is not None:
        query = query.where(ChainRef.name == name)
    return session.exec(query.limit(1)).first() is not None
