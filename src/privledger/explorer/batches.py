"""Merkle-anchored log batches (BatchAnchor) and checking an entry's proof against one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from privledger.node.context import NodeContext
from privledger.store.models import ChainEvent

from . import refs
from .directory import Directory
from .web import BadInput, hex32

PAGE_SIZE = 50
MAX_PROOF = 64


@dataclass
class BatchRow:
    batch_id: int
    org_id: int
    org_name: str
    root: str
    leaf_count: int
    label: str
    label_text: str
    block_number: int
    tx_hash: str


def _label_text(label: str) -> str:
    """A label as text when it is short UTF-8 padded with zeros (labels are free-form bytes32)."""
    raw = bytes.fromhex(label[2:]).rstrip(b"\0")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return text if text.isprintable() else ""


def _row(event: ChainEvent, directory: Directory) -> BatchRow:
    org = int(event.args["orgId"])
    label = str(event.args["label"])
    return BatchRow(
        batch_id=int(event.args["batchId"]),
        org_id=org,
        org_name=directory.org_name(org),
        root=str(event.args["root"]),
        leaf_count=int(event.args["leafCount"]),
        label=label,
        label_text=_label_text(label),
        block_number=event.block_number,
        tx_hash=event.tx_hash,
    )


def batch_rows(
    session: Session, directory: Directory, *, offset: int, limit: int = PAGE_SIZE
) -> tuple[list[BatchRow], int]:
    anchored = ChainEvent.event == "BatchAnchored"
    total = session.exec(select(func.count()).select_from(ChainEvent).where(anchored)).one()
    events = session.exec(
        select(ChainEvent)
        .where(anchored)
        .order_by(col(ChainEvent.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return [_row(e, directory) for e in events], total


def batch(session: Session, directory: Directory, batch_id: int) -> BatchRow | None:
    found = refs.events_about(session, "batch", [str(batch_id)], ["BatchAnchored"])
    return _row(found[0], directory) if found else None


def parse_proof(text: str) -> list[bytes]:
    """Sibling hashes, one per line (or separated by commas or spaces)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    if len(parts) > MAX_PROOF:
        raise BadInput(f"a proof has at most {MAX_PROOF} hashes")
    return [bytes.fromhex(hex32(p, "proof hash")[2:]) for p in parts]


def check_proof(node: NodeContext, batch_id: int, digest: str, proof: str) -> bool:
    """Whether BatchAnchor.verify accepts ``digest`` with ``proof`` as a leaf of the batch."""
    leaf = bytes.fromhex(hex32(digest, "digest")[2:])
    return node.ledger.anchors.verify(batch_id, leaf, parse_proof(proof))
