"""Settlements (Metering): each settled task's fee and how it was allocated or refunded, and
every organisation's balance."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import Session, col, select

from privledger.node.context import NodeContext
from privledger.store.models import ChainEvent

from . import refs
from .directory import Directory

PAGE_SIZE = 50
PAYMENTS = ("FeeAllocated", "FeeRefunded")


@dataclass
class Payment:
    kind: str  # "allocated" or "refunded"
    org_id: int
    org_name: str
    amount: int


@dataclass
class SettlementRow:
    task_id: int
    fee: int
    provenance_hash: str
    block_number: int
    tx_hash: str
    payments: list[Payment] = field(default_factory=list)


@dataclass
class Balance:
    org_id: int
    org_name: str
    balance: int


def settlement_rows(
    session: Session, directory: Directory, *, offset: int, limit: int = PAGE_SIZE
) -> tuple[list[SettlementRow], int]:
    """A page of settlements, newest first, with their payments; and how many there are."""
    settled = ChainEvent.event == "TaskSettled"
    total = session.exec(select(func.count()).select_from(ChainEvent).where(settled)).one()
    events = list(
        session.exec(
            select(ChainEvent)
            .where(settled)
            .order_by(col(ChainEvent.id).desc())
            .offset(offset)
            .limit(limit)
        )
    )
    rows = {
        int(e.args["taskId"]): SettlementRow(
            task_id=int(e.args["taskId"]),
            fee=int(e.args["fee"]),
            provenance_hash=str(e.args["provenanceHash"]),
            block_number=e.block_number,
            tx_hash=e.tx_hash,
        )
        for e in events
    }
    for payment in refs.events_about(session, "task", (str(t) for t in rows), PAYMENTS):
        org = int(payment.args.get("payeeOrg", payment.args.get("payerOrg", 0)))
        rows[int(payment.args["taskId"])].payments.append(
            Payment(
                kind="allocated" if payment.event == "FeeAllocated" else "refunded",
                org_id=org,
                org_name=directory.org_name(org),
                amount=int(payment.args["amount"]),
            )
        )
    return list(rows.values()), total


def balances(node: NodeContext, directory: Directory) -> list[Balance]:
    """Every organisation's withdrawable balance, read from Metering now."""
    return [
        Balance(org.org_id, org.name, node.ledger.metering.balance_of(org.org_id))
        for org in sorted(directory.orgs.values(), key=lambda o: o.org_id)
    ]
