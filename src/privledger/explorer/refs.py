"""Look-ups through the reference index (``ChainRef``): the calls and events that name a task,
dataset, grant, org, batch or account."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import and_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from privledger.store.models import ChainEvent, ChainRef


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


def calls_naming(session: Session, kind: str, value: str, names: Sequence[str]) -> list[str]:
    """Hashes of the transactions whose call (one of ``names``) names ``value``, in chain order."""
    query = (
        select(ChainRef.tx_hash)
        .where(
            ChainRef.kind == kind,
            ChainRef.value == value,
            ChainRef.log_index == -1,
            col(ChainRef.name).in_(names),
        )
        .order_by(col(ChainRef.block_number), col(ChainRef.id))
    )
    return list(dict.fromkeys(session.exec(query)))


def named_in(
    session: Session, tx_hashes: Iterable[str], kind: str, name: str | None = None
) -> dict[str, list[str]]:
    """For each transaction, the values of ``kind`` named by its call (``name`` None) or by its
    events called ``name``, in order."""
    hashes = list(dict.fromkeys(tx_hashes))
    found: dict[str, list[str]] = {h: [] for h in hashes}
    if not hashes:
        return found
    # only the transaction hash in SQL: it is the selective index, whatever the planner guesses
    rows = session.connection().execute(
        sa_select(
            col(ChainRef.tx_hash),
            col(ChainRef.kind),
            col(ChainRef.value),
            col(ChainRef.name),
            col(ChainRef.log_index),
        )
        .where(col(ChainRef.tx_hash).in_(hashes))
        .order_by(col(ChainRef.id))
    )
    for tx_hash, ref_kind, value, ref_name, log_index in rows:
        wanted = log_index == -1 if name is None else (log_index >= 0 and ref_name == name)
        if ref_kind == kind and wanted:
            found[tx_hash].append(value)
    return found


def values_named(session: Session, tx_hashes: Iterable[str], kind: str, name: str) -> list[str]:
    """The values of ``kind`` that the ``name`` events of these transactions name, in order."""
    return [v for values in named_in(session, tx_hashes, kind, name).values() for v in values]


def last_named(
    session: Session, kind: str, values: Iterable[str], names: Sequence[str]
) -> dict[str, str]:
    """For each of ``values``, the name of the last of ``names`` that refers to it."""
    wanted = list(dict.fromkeys(values))
    if not wanted:
        return {}
    rows = session.exec(
        select(ChainRef.value, ChainRef.name)
        .where(
            ChainRef.kind == kind, col(ChainRef.value).in_(wanted), col(ChainRef.name).in_(names)
        )
        .order_by(col(ChainRef.block_number), col(ChainRef.id))
    )
    return dict(rows.all())


def exists(session: Session, kind: str, value: str, name: str | None = None) -> bool:
    query = select(ChainRef.id).where(ChainRef.kind == kind, ChainRef.value == value)
    if name is not None:
        query = query.where(ChainRef.name == name)
    return session.exec(query.limit(1)).first() is not None
