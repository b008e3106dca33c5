"""Datasets as the ledger records them: registration, price and retirement, parents and derived
datasets, and the history of every grant issued on them and every task that used them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from privledger.evm.contracts import Kind
from privledger.store.models import ChainEvent, ChainTx

from . import refs
from .directory import Directory

PAGE_SIZE = 50
# the events that count a use of a grant: a task's own, and one under a grant derived from it
USES = ("GrantConsumed", "DerivedUseCounted")


@dataclass
class DatasetRow:
    dataset_id: str
    owner_org: int
    owner_name: str
    level: int
    row_count: int
    block_number: int
    tx_hash: str


@dataclass
class GrantHistory:
    grant_id: str
    grantee_org: int
    grantee_name: str
    kinds: str
    expiry: int
    max_uses: int
    used: int
    revoked: bool
    issued_block: int
    issued_tx: str
    events: list[ChainEvent] = field(default_factory=list)


@dataclass
class DatasetDetail:
    row: DatasetRow
    registration: ChainTx | None
    parents: list[str]
    children: list[str]
    unit_price: int | None
    retired: bool
    grants: list[GrantHistory]
    approvals: list[ChainEvent]
    tasks: list[int]
    rows_used: int
    history: list[ChainEvent]

    def as_json(self) -> dict[str, Any]:
        return {
            **self.row.__dict__,
            "parents": self.parents,
            "children": self.children,
            "unit_price": self.unit_price,
            "retired": self.retired,
            "tasks": self.tasks,
            "rows_used": self.rows_used,
            "grants": [{k: v for k, v in g.__dict__.items() if k != "events"} for g in self.grants],
        }


def kind_names(mask: int) -> str:
    return ", ".join(k.name.lower() for k in Kind if k & mask and k.name)


def _row(event: ChainEvent, directory: Directory) -> DatasetRow:
    owner = int(event.args["ownerOrg"])
    return DatasetRow(
        dataset_id=str(event.args["datasetId"]),
        owner_org=owner,
        owner_name=directory.org_name(owner),
        level=int(event.args["level"]),
        row_count=int(event.args["rowCount"]),
        block_number=event.block_number,
        tx_hash=event.tx_hash,
    )


def dataset_rows(
    session: Session, directory: Directory, *, offset: int, limit: int = PAGE_SIZE
) -> tuple[list[DatasetRow], int]:
    """A page of registered datasets, newest first, and how many there are."""
    registered = ChainEvent.event == "DatasetRegistered"
    total = session.exec(select(func.count()).select_from(ChainEvent).where(registered)).one()
    events = session.exec(
        select(ChainEvent)
        .where(registered)
        .order_by(col(ChainEvent.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return [_row(event, directory) for event in events], total


def registration(session: Session, dataset_id: str) -> ChainEvent | None:
    found = refs.events_about(session, "dataset", [dataset_id], ["DatasetRegistered"])
    return next((e for e in found if e.args["datasetId"] == dataset_id), None)


def dataset_detail(session: Session, directory: Directory, dataset_id: str) -> DatasetDetail | None:
    registered = registration(session, dataset_id)
    if registered is None:
        return None
    call = session.get(ChainTx, registered.tx_hash)
    history = refs.events_about(session, "dataset", [dataset_id])
    issued = [e for e in history if e.event == "GrantIssued"]
    grant_events = refs.events_about(
        session,
        "grant",
        [str(e.args["grantId"]) for e in issued],
        [*USES, "GrantRevoked"],
    )
    grants = []
    for event in issued:
        grant_id = str(event.args["grantId"])
        own = [e for e in grant_events if e.args["grantId"] == grant_id]
        grantee = int(event.args["granteeOrg"])
        grants.append(
            GrantHistory(
                grant_id=grant_id,
                grantee_org=grantee,
                grantee_name=directory.org_name(grantee),
                kinds=kind_names(int(event.args["kinds"])),
                expiry=int(event.args["expiry"]),
                max_uses=int(event.args["maxUses"]),
                used=sum(1 for e in own if e.event in USES),
                revoked=any(e.event == "GrantRevoked" for e in own),
                issued_block=event.block_number,
                issued_tx=event.tx_hash,
                events=[event, *own],
            )
        )
    submissions = refs.calls_naming(session, "dataset", dataset_id, ["submitTask"])
    tasks = [int(t) for t in refs.values_named(session, submissions, "task", "TaskSubmitted")]
    derivations = refs.calls_naming(session, "dataset", dataset_id, ["register"])
    children = refs.values_named(session, derivations, "dataset", "DatasetRegistered")
    prices = [e for e in history if e.event == "UnitPriceChanged"]
    registered_price = call.args.get("unitPrice") if call is not None else None
    unit_price = int(prices[-1].args["unitPrice"]) if prices else registered_price
    return DatasetDetail(
        row=_row(registered, directory),
        registration=call,
        parents=[str(p).lower() for p in call.args.get("parents", [])] if call else [],
        children=children,
        unit_price=None if unit_price is None else int(unit_price),
        retired=any(e.event == "DatasetRetired" for e in history),
        grants=grants,
        approvals=[
            e for e in history if e.event in ("ApprovalRequested", "InputApproved", "InputRejected")
        ],
        tasks=tasks,
        rows_used=sum(int(e.args["count"]) for e in history if e.event == "UsageRecorded"),
        history=history,
    )
