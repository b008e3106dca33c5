"""Tamper-evident logs (F5, F18): entries of a log table are anchored on chain in Merkle batches.

A log table has an integer ``id``, a hex ``digest`` (keccak256 of the entry's canonical JSON) and
the batch position it was anchored at (``batch_id``, ``batch_index``, ``batch_tx``). Pending
entries are anchored together: the Merkle root of their digests goes on chain in one
``BatchAnchor`` transaction, and any entry can later be proven with a self-contained
:class:`~privledger.evm.merkle.ProofDocument` that anyone checks offline or against the chain.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol, TypeVar

from sqlmodel import Session, SQLModel, col, select

from privledger.evm.hashing import keccak256
from privledger.evm.merkle import MerkleTree, ProofDocument
from privledger.node.context import NodeContext

logger = logging.getLogger(__name__)


class LogEntry(Protocol):
    id: int | None
    digest: str
    batch_id: int | None
    batch_index: int | None
    batch_tx: str | None


E = TypeVar("E", bound=SQLModel)


class LogMismatch(ValueError):
    """The local log no longer matches what it committed to: an entry whose fields do not give
    its digest, or a batch whose digests do not give the root on chain. No proof is issued for
    what cannot be proven (the API answers 409)."""


def entry_digest(entry: Mapping[str, Any]) -> str:
    """keccak256 of the entry's canonical JSON (sorted keys, no spaces): what a batch commits to."""
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    return "0x" + keccak256(canonical).hex()


def anchor_pending(
    node: NodeContext, table: type[E], label: bytes, *, limit: int = 100_000
) -> int | None:
    """Anchor up to ``limit`` unanchored entries of ``table`` in one batch; the batch id, if any."""
    with Session(node.engine) as session:
        pending: list[Any] = list(
            session.exec(
                select(table)
                .where(col(table.batch_id).is_(None))  # type: ignore[attr-defined]
                .order_by(col(table.id))  # type: ignore[attr-defined]
                .limit(limit)
            )
        )
        if not pending:
            return None
        tree = MerkleTree([bytes.fromhex(entry.digest[2:]) for entry in pending])
        batch_id, receipt = node.ledger.anchors.anchor_batch(tree.root, len(pending), label)
        for index, entry in enumerate(pending):
            entry.batch_id = batch_id
            entry.batch_index = index
            entry.batch_tx = receipt["transactionHash"].to_0x_hex()
            session.add(entry)
        session.commit()
    logger.info("anchored %d %s entries in batch %d", len(pending), table.__name__, batch_id)
    return batch_id


RECENT_BATCHES = 64  # a node's own latest batches, checked after every reorganisation


def release_vanished(node: NodeContext, table: type[E], tx_hashes: Collection[str]) -> int:
    """Entries of ``table`` whose batch a reorganisation took back (see :func:`_vanished`: its
    id may now be another batch's) lose their batch position, so the next
    :func:`anchor_pending` puts them in a new batch; how many."""
    batch_tx = col(table.batch_tx)  # type: ignore[attr-defined]
    with Session(node.engine) as session:
        vanished = _vanished(node, session, batch_tx, col(table.batch_id), tx_hashes)  # type: ignore[attr-defined]
        if not vanished:
            return 0
        entries: list[Any] = list(session.exec(select(table).where(batch_tx.in_(vanished))))
        for entry in entries:
            entry.batch_id = entry.batch_index = entry.batch_tx = None
            session.add(entry)
        session.commit()
    logger.warning(
        "%d %s entries lost their batch to a reorganisation", len(entries), table.__name__
    )
    return len(entries)


def anchor_vanished_again(
    node: NodeContext,
    table: type[E],
    tx_hashes: Collection[str],
    anchor: Callable[[Any], tuple[int, str]],
) -> int:
    """Records of ``table`` anchored one by one, each in a batch of its own (``anchor_batch_id``,
    ``anchor_tx``: an interop decision), whose batch a reorganisation took back (see
    :func:`_vanished`) are anchored again by ``anchor`` (a record's new batch id and
    transaction); how many. The nonces the chain took back are filled first, so the new
    batches are not left waiting behind them."""
    anchor_tx = col(table.anchor_tx)  # type: ignore[attr-defined]
    with Session(node.engine) as session:
        vanished = _vanished(node, session, anchor_tx, col(table.anchor_batch_id), tx_hashes)  # type: ignore[attr-defined]
        if not vanished:
            return 0
        node.ledger.client.close_nonce_gaps()
        records: list[Any] = list(session.exec(select(table).where(anchor_tx.in_(vanished))))
        for record in records:
            record.anchor_batch_id, record.anchor_tx = anchor(record)
            session.add(record)
            session.commit()  # each as soon as it is on chain again
    logger.warning(
        "%d %s records anchored again after a reorganisation", len(records), table.__name__
    )
    return len(records)


def _vanished(
    node: NodeContext,
    session: Session,
    tx_column: Any,
    batch_column: Any,
    tx_hashes: Collection[str],
) -> list[str]:
    """The batch transactions (``tx_column``) of a table that the chain no longer holds, among
    those in ``tx_hashes`` (the transactions of the blocks the index forgot) and those of the
    table's :data:`RECENT_BATCHES` latest batches (by ``batch_column``): a batch mined in a
    block the index had not read yet when the chain reorganised is in no forgotten block."""
    used = set(session.exec(select(tx_column).where(tx_column.in_(list(tx_hashes))).distinct()))
    latest = session.exec(
        select(batch_column, tx_column)
        .where(tx_column.is_not(None))
        .distinct()
        .order_by(batch_column.desc())
        .limit(RECENT_BATCHES)
    )
    used |= {tx for _, tx in latest}
    return [tx for tx in sorted(used) if not node.ledger.client.mined(tx)]


def proof_of(
    node: NodeContext,
    table: type[E],
    entry: LogEntry,
    canonical: Callable[[Any], Mapping[str, Any]] | None = None,
) -> ProofDocument | None:
    """The inclusion proof of an anchored entry, rebuilt from its batch; None if not anchored.

    With ``canonical`` (the fields an entry's digest commits to), an entry whose fields were
    edited after it was logged gets no proof of its stored digest. A batch whose digests no
    longer give the root on chain (an entry edited together with its digest) gets none either.
    Both raise :class:`LogMismatch`."""
    if entry.batch_id is None or entry.batch_index is None or entry.batch_tx is None:
        return None
    if canonical is not None and entry_digest(canonical(entry)) != entry.digest:
        raise LogMismatch(f"entry {entry.id} was altered: its fields do not give its digest")
    with Session(node.engine) as session:
        batch: list[Any] = list(
            session.exec(
                select(table)
                .where(table.batch_id == entry.batch_id)  # type: ignore[attr-defined]
                .order_by(col(table.batch_index))  # type: ignore[attr-defined]
            )
        )
    tree = MerkleTree([bytes.fromhex(item.digest[2:]) for item in batch])
    anchored = node.ledger.anchors.get_batch(entry.batch_id)
    if anchored.root != tree.root:
        raise LogMismatch(
            f"batch {entry.batch_id} on chain does not match the local log: an entry of it was "
            "altered or removed"
        )
    return ProofDocument(
        digest=bytes.fromhex(entry.digest[2:]),
        proof=tree.proof(entry.batch_index),
        root=tree.root,
        batch_id=entry.batch_id,
        chain_id=node.ledger.client.chain_id,
        contract=node.ledger.anchors.address,
        tx_hash=entry.batch_tx,
        block_number=anchored.block_number,
    )
