"""Queries over the indexed chain events."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from privledger.store.models import ChainEvent


def events_after(session: Session, names: Sequence[str], after_id: int) -> list[ChainEvent]:
    """Events named one of ``names`` indexed after the event with id ``after_id``, in the order
    they were indexed (chain order)."""
    query = select(ChainEvent).where(col(ChainEvent.event).in_(names))
    query = query.where(col(ChainEvent.id) > after_id).order_by(col(ChainEvent.id))
    return list(session.exec(query))


def events_named(
    session: Session,
    names: Sequence[str],
    *,
    task_id: int | None = None,
    dataset_id: str | None = None,
    tx_hash: str | None = None,
) -> list[ChainEvent]:
    """Events named one of ``names``, optionally of one task, dataset or tx, in chain order."""
    query = select(ChainEvent).where(col(ChainEvent.event).in_(names))
    if task_id is not None:
        query = query.where(ChainEvent.args["taskId"].as_integer() == task_id)
    if dataset_id is not None:
        query = query.where(ChainEvent.args["datasetId"].as_string() == dataset_id.lower())
    if tx_hash is not None:
        query = query.where(ChainEvent.tx_hash == tx_hash)
    query = query.order_by(col(ChainEvent.block_number), col(ChainEvent.log_index))
    return list(session.exec(query))


def grants_consumed_by(session: Session, task_id: int) -> list[ChainEvent]:
    """The ``GrantConsumed`` events of task ``task_id``'s submission, in chain order: one per
    grant it used, each naming the task (a contract may submit several tasks in one transaction,
    and each task's grants are its own)."""
    return events_named(session, ["GrantConsumed"], task_id=task_id)
