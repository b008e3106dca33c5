"""A task's on-chain story, read from the indexed events and checked against the chain."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from privledger.evm.contracts import FailureReason, Grant, Kind, Task, TaskStatus
from privledger.node.components import PROTOCOL_NAMES, installed
from privledger.node.context import NodeContext
from privledger.node.grants import terms_of
from privledger.node.spec import parse_canonical
from privledger.store.models import ChainEvent, LocalTask

from . import refs
from .directory import Directory


@dataclass
class EventRow:
    block_number: int
    log_index: int
    tx_hash: str
    contract: str
    event: str
    args: dict[str, Any]


@dataclass
class TaskRow:
    task_id: int
    status: str
    kind: str
    requester_org: int
    requester_name: str
    fee: int
    block_number: int
    tx_hash: str


@dataclass
class GrantRow:
    grant_id: str
    dataset_id: str
    grantee_org: int
    kinds: str
    expiry: int
    max_uses: int
    used: int
    used_by_task: int
    revoked: bool
    state: str
    grantor: str
    terms_hash: str
    terms: dict[str, Any] | None  # the terms document the task ran under (None: does not match)


@dataclass
class InputRow:
    dataset_id: str
    owner_org: int
    owner_name: str
    authorised_by: str


@dataclass
class AnchorRow:
    org_id: int
    org_name: str
    anchored: bool
    absent: bool = False  # the task completed without it (ParticipantAbsent)
    # the block of its DeliveryRecorded: it handed the requester its output before it could
    # anchor, which bound the requester as an anchor does (0: none)
    delivered_block: int = 0
    result_digest: str = ""
    transcript_hash: str = ""
    block_number: int = 0
    tx_hash: str = ""
    on_chain: bool = False


@dataclass
class Settlement:
    settled: bool
    provenance_hash: str = ""
    fee: int = 0
    allocations: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    escrow: int = 0


@dataclass
class TaskStory:
    task_id: int
    status: str
    kind: str
    spec_hash: str
    requester_org: int
    requester_name: str
    requester: str
    submitted_at: int
    deadline: int
    fee: int
    pending_approvals: int
    participants: list[dict[str, Any]]
    inputs: list[InputRow]
    events: list[EventRow]
    grants: list[GrantRow]
    approvals: list[EventRow]
    anchors: list[AnchorRow]
    transcripts_agree: bool | None
    settlement: Settlement
    failure_reason: str | None
    failure_code: int
    protocol: str = ""  # its name on chain ("component": a vendor component's)
    component: dict[str, Any] | None = None  # as the spec names it, when this node holds it

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class OrgNames:
    """Organisation names read from the chain, once per request."""

    def __init__(self, node: NodeContext) -> None:
        self.node = node
        self._names: dict[int, str] = {}

    def __call__(self, org_id: int) -> str:
        if org_id not in self._names:
            count = self.node.ledger.orgs.org_count()
            known = 1 <= org_id <= count
            self._names[org_id] = (
                self.node.ledger.orgs.get_org(org_id).name if known else f"org {org_id}"
            )
        return self._names[org_id]


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


def kind_name(kind: Kind) -> str:
    return kind.name.lower() if kind.name else str(int(kind))


def failure_name(code: int) -> str | None:
    if code == 0:
        return None
    try:
        return FailureReason(code).name.lower()
    except ValueError:
        return f"reason {code}"


def task_exists(node: NodeContext, task_id: int) -> bool:
    return 1 <= task_id <= node.ledger.tasks.task_count()


def _row(event: ChainEvent) -> EventRow:
    return EventRow(
        event.block_number, event.log_index, event.tx_hash, event.contract, event.event, event.args
    )


STATUS_EVENTS = {
    "TaskSubmitted": "submitted",
    "TaskAuthorised": "authorised",
    "TaskStarted": "running",
    "TaskCompleted": "completed",
    "TaskFailed": "failed",
    "TaskExpired": "failed",
    "TaskSettled": "settled",
}


def task_statuses(session: Session, task_ids: list[int]) -> dict[int, str]:
    """Each task's status now, from the last status event the ledger emitted for it."""
    last = refs.last_named(session, "task", (str(t) for t in task_ids), list(STATUS_EVENTS))
    return {int(task): STATUS_EVENTS[name] for task, name in last.items()}


def task_count(session: Session) -> int:
    submitted = ChainEvent.event == "TaskSubmitted"
    return session.exec(select(func.count()).select_from(ChainEvent).where(submitted)).one()


def task_rows(session: Session, *, offset: int = 0, limit: int = 50) -> list[TaskRow]:
    """A page of submitted tasks, newest first, all read from the index."""
    submitted = list(
        session.exec(
            select(ChainEvent)
            .where(ChainEvent.event == "TaskSubmitted")
            .order_by(col(ChainEvent.id).desc())
            .offset(offset)
            .limit(limit)
        )
    )
    directory = Directory.load(session)
    statuses = task_statuses(session, [int(e.args["taskId"]) for e in submitted])
    rows = []
    for event in submitted:
        task_id = int(event.args["taskId"])
        requester = int(event.args["requesterOrg"])
        rows.append(
            TaskRow(
                task_id=task_id,
                status=statuses.get(task_id, "submitted"),
                kind=kind_name(Kind(int(event.args["kind"]))),
                requester_org=requester,
                requester_name=directory.org_name(requester),
                fee=int(event.args["fee"]),
                block_number=event.block_number,
                tx_hash=event.tx_hash,
            )
        )
    return rows


def task_story(node: NodeContext, task_id: int) -> TaskStory:
    """Everything the ledger recorded about a task that exists (see ``task_exists``)."""
    node.indexer.sync()
    ledger = node.ledger
    task = ledger.tasks.get_task(task_id)
    names = OrgNames(node)
    with Session(node.engine) as session:
        own = refs.events_about(session, "task", [str(task_id)])  # the grants it used among them
    consumed = [e for e in own if e.event == "GrantConsumed"]
    events = sorted((_row(e) for e in own), key=lambda row: (row.block_number, row.log_index))
    grants = _grants(node, consumed)
    approvals = [
        row
        for row in events
        if row.event in ("ApprovalRequested", "InputApproved", "InputRejected")
    ]
    anchors = _anchors(node, task, own, names)
    transcripts = {a.transcript_hash for a in anchors if a.anchored}
    # one channel between two participants: both ends hash the same messages; with more
    # participants each anchors its own view of several channels, so there is nothing to compare
    comparable = len(anchors) == 2 and all(a.anchored for a in anchors)
    agree = len(transcripts) == 1 if comparable else None
    return TaskStory(
        task_id=task_id,
        status=task.status.name.lower(),
        kind=kind_name(task.kind),
        spec_hash=hex32(task.spec_hash),
        requester_org=task.requester_org,
        requester_name=names(task.requester_org),
        requester=task.requester,
        submitted_at=task.submitted_at,
        deadline=task.deadline,
        fee=task.fee,
        pending_approvals=task.pending_approvals,
        participants=[{"org_id": p, "org_name": names(p)} for p in task.participants],
        inputs=_inputs(node, task, grants, approvals, names),
        events=events,
        grants=grants,
        approvals=approvals,
        anchors=anchors,
        transcripts_agree=agree,
        settlement=_settlement(node, task, own, names),
        failure_reason=failure_name(task.failure_reason),
        failure_code=task.failure_reason,
        protocol=PROTOCOL_NAMES.get(task.protocol, str(task.protocol)),
        component=held_component(node, task_id, task.spec_hash),
    )


def held_component(node: NodeContext, task_id: int, spec_hash: bytes) -> dict[str, Any] | None:
    """The component the task's spec names -- name, version, code hash and whether this node
    has it installed at that hash -- when this node holds the spec (it took part), else None:
    the chain keeps only the spec's hash."""
    with Session(node.engine) as session:
        row = session.get(LocalTask, task_id)
    if row is None or row.spec_json is None or row.spec_hash != hex32(spec_hash):
        return None
    try:
        spec = parse_canonical(row.spec_json.encode())
    except ValueError:
        return None
    installed_here = installed().get(spec.protocol)
    return {
        **spec.component.model_dump(),
        "protocol": spec.protocol,
        "installed_here": installed_here is not None and installed_here.ref == spec.component,
    }


def _grant_state(grant: Grant, now: int) -> str:
    """A grant as it stands at chain time ``now``."""
    if grant.revoked:
        return "revoked"
    if grant.expiry <= now:
        return "expired"
    if grant.used >= grant.max_uses:
        return "used up"
    return "active"


def _grants(node: NodeContext, consumed: list[ChainEvent]) -> list[GrantRow]:
    """The grants the task's submission consumed, as they stand now, with their terms."""
    ledger = node.ledger
    now = ledger.client.latest_timestamp()
    rows = []
    for event in consumed:
        grant_id = bytes.fromhex(event.args["grantId"][2:])
        grant = ledger.grants.get_grant(grant_id)
        terms = terms_of(node, grant)
        rows.append(
            GrantRow(
                grant_id=hex32(grant_id),
                dataset_id=hex32(grant.dataset_id),
                grantee_org=grant.grantee_org,
                kinds=", ".join(k.name.lower() for k in Kind if k in grant.kinds and k.name),
                expiry=grant.expiry,
                max_uses=grant.max_uses,
                used=grant.used,
                used_by_task=int(event.args["used"]),
                revoked=grant.revoked,
                state=_grant_state(grant, now),
                grantor=grant.grantor,
                terms_hash=hex32(grant.terms_hash),
                terms=None if terms is None else terms.model_dump(mode="json"),
            )
        )
    return rows


def _inputs(
    node: NodeContext,
    task: Task,
    grants: list[GrantRow],
    approvals: list[EventRow],
    names: OrgNames,
) -> list[InputRow]:
    """Each input and what authorised it: own data, a grant, or its owner's decision."""
    rows = []
    for dataset in task.inputs:
        dataset_hex = hex32(dataset)
        owner = node.ledger.data.get_dataset(dataset).owner_org
        if owner == task.requester_org:
            how = "own data"
        elif any(g.dataset_id == dataset_hex for g in grants):
            how = "grant"
        else:
            decided = [
                a.event
                for a in approvals
                if a.event != "ApprovalRequested" and a.args.get("datasetId") == dataset_hex
            ]
            how = {"InputApproved": "approved", "InputRejected": "rejected"}.get(
                decided[-1] if decided else "", "approval pending"
            )
        rows.append(InputRow(dataset_hex, owner, names(owner), how))
    return rows


def _anchors(
    node: NodeContext, task: Task, own: list[ChainEvent], names: OrgNames
) -> list[AnchorRow]:
    """Each participant's anchor (or its absence), checked against the chain."""
    anchored = {int(e.args["org"]): e for e in own if e.event == "ResultAnchored"}
    absent = {int(e.args["org"]) for e in own if e.event == "ParticipantAbsent"}
    delivered = {int(e.args["org"]): e.block_number for e in own if e.event == "DeliveryRecorded"}
    rows = []
    for org_id in task.participants:
        anchor = anchored.get(org_id)
        if anchor is None:
            rows.append(
                AnchorRow(
                    org_id,
                    names(org_id),
                    False,
                    org_id in absent,
                    delivered_block=delivered.get(org_id, 0),
                )
            )
            continue
        digest, transcript = anchor.args["resultDigest"], anchor.args["transcriptHash"]
        rows.append(
            AnchorRow(
                org_id=org_id,
                org_name=names(org_id),
                anchored=True,
                result_digest=digest,
                transcript_hash=transcript,
                block_number=anchor.block_number,
                tx_hash=anchor.tx_hash,
                delivered_block=delivered.get(org_id, 0),
                on_chain=node.ledger.tasks.verify_anchor(
                    task.task_id,
                    org_id,
                    bytes.fromhex(digest[2:]),
                    bytes.fromhex(transcript[2:]),
                ),
            )
        )
    return rows


def _settlement(
    node: NodeContext, task: Task, own: list[ChainEvent], names: OrgNames
) -> Settlement:
    """The fee's allocations and refunds, and what is still in escrow."""

    def paid(event: str, org_arg: str) -> list[dict[str, Any]]:
        return [
            {
                "org_id": int(e.args[org_arg]),
                "org_name": names(int(e.args[org_arg])),
                "amount": int(e.args["amount"]),
            }
            for e in own
            if e.event == event
        ]

    settled = [e for e in own if e.event == "TaskSettled"]
    return Settlement(
        settled=task.status is TaskStatus.SETTLED,
        provenance_hash=settled[-1].args["provenanceHash"] if settled else "",
        fee=int(settled[-1].args["fee"]) if settled else 0,
        allocations=paid("FeeAllocated", "payeeOrg"),
        refunds=paid("FeeRefunded", "payerOrg"),
        escrow=node.ledger.tasks.escrow_of(task.task_id),
    )
