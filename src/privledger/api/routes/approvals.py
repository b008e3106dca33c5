"""Approval requests: a task using this organisation's data without a grant waits for a decision.

A pending request is shown as the owner must judge it: the task's spec, fetched from the
requester's node (:mod:`privledger.node.peer_spec`) and checked against the task on chain, as it
concerns the owner's dataset -- protocol, what happens to each column, who learns the result, the
dealer and fee -- and held, term by term, to the terms the owner gave the requester on this
dataset (any grant, usable or not) or, with none, the default terms of the task's kind, by the
one matching function :func:`privledger.node.terms.violation`. Only a verified spec can be
approved; the on-chain facts are shown whatever the requester's node answers.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlmodel import Session

from privledger.api.deps import DataOwner, NodeDep, SessionDep, TaskId
from privledger.api.errors import ApiError, ErrorResponse, not_found, parse_hex32
from privledger.api.routes.grants import asset_columns
from privledger.api.schemas import (
    ApprovalIn,
    ApprovalOut,
    ColumnUseOut,
    GrantState,
    RequestOut,
    SpecStatus,
    TermCheckOut,
    TermsReviewOut,
)
from privledger.evm.contracts import (
    ApprovalStatus,
    FailureReason,
    Grant,
    Kind,
    Task,
    TaskStatus,
)
from privledger.node.components import KINDS, PROTOCOL_NAMES
from privledger.node.context import NodeContext
from privledger.node.grants import terms_of
from privledger.node.peer_spec import InboxSpecs
from privledger.node.runners import TaskRefused
from privledger.node.spec import SpecInput, TaskSpec
from privledger.node.terms import (
    GrantTerms,
    TermViolation,
    column_uses,
    default_terms,
    violation,
)
from privledger.store.assets import held_asset_ids
from privledger.store.events import events_named

router = APIRouter(prefix="/approvals", tags=["approvals"])
INBOX_SPECS = InboxSpecs()  # one per process: what the requesters' nodes served, verified
SPEC_STATUS: dict[FailureReason, SpecStatus] = {
    FailureReason.PEER_UNREACHABLE: "unreachable",
    FailureReason.SPEC_MISMATCH: "mismatch",
}


@router.get("", response_model=list[ApprovalOut])
def list_approvals(_caller: DataOwner, node: NodeDep, session: SessionDep) -> list[ApprovalOut]:
    """Every approval request on this node's datasets, with its current status; a pending one
    with the task's spec and the owner's terms, term by term."""
    node.indexer.sync()
    ours = held_asset_ids(session)
    requests = [
        e for e in events_named(session, ["ApprovalRequested"]) if e.args["datasetId"] in ours
    ]
    return [
        approval_out(
            node, session, event.args["taskId"], parse_hex32(event.args["datasetId"], "dataset id")
        )
        for event in requests
    ]


@router.get("/{task_id}/{dataset_id}", response_model=ApprovalOut)
def show_approval(
    task_id: TaskId, dataset_id: str, _caller: DataOwner, node: NodeDep, session: SessionDep
) -> ApprovalOut:
    """One approval request on this node's dataset: the task's spec against the owner's terms."""
    dataset = parse_hex32(dataset_id, "dataset id")
    node.indexer.sync()
    asked = events_named(session, ["ApprovalRequested"], task_id=task_id, dataset_id=dataset_id)
    if not asked or asked[0].args["datasetId"] not in held_asset_ids(session):
        raise not_found(f"approval request of task {task_id} on dataset {dataset_id}")
    return approval_out(node, session, task_id, dataset)


def approval_out(node: NodeContext, session: Session, task_id: int, dataset: bytes) -> ApprovalOut:
    """A request as the chain has it, and, while it waits, as the requester's spec states it."""
    task = node.ledger.tasks.get_task(task_id)
    status = node.ledger.grants.approval_of(task_id, dataset)
    out = ApprovalOut(
        task_id=task_id,
        dataset="0x" + dataset.hex(),
        requester_org=task.requester_org,
        status=status.name.lower(),
        protocol=PROTOCOL_NAMES.get(task.protocol, str(task.protocol)),
        fee_wei=task.fee,
    )
    if status is not ApprovalStatus.PENDING or task.status is not TaskStatus.SUBMITTED:
        return out
    try:
        spec = INBOX_SPECS.checked(node, task)
    except TaskRefused as refused:
        return out.model_copy(
            update={"spec_status": SPEC_STATUS[refused.reason], "spec_message": str(refused)}
        )
    item = next(i for i in spec.inputs if bytes.fromhex(i.dataset[2:]) == dataset)
    recipients = [spec.requester] if spec.output == "requester" else spec.participants
    request = RequestOut(
        protocol=spec.protocol,
        column_uses=[
            ColumnUseOut(column=column, use=use)
            for column, uses in column_uses(spec, item).items()
            for use in uses
        ],
        output=spec.output,
        recipients=sorted(set(recipients)),
        dealer_org=spec.dealer_org,
        participants=list(spec.participants),
    )
    reviews = _reviews(node, session, task, spec, item)
    return out.model_copy(
        update={"spec_status": "verified", "request": request, "reviews": reviews}
    )


def _reviews(
    node: NodeContext, session: Session, task: Task, spec: TaskSpec, item: SpecInput
) -> list[TermsReviewOut]:
    """The request against every grant this organisation gave the requester on the dataset,
    newest first; with none, against the default terms of the task's kind."""
    node.indexer.sync_for("GrantRegistry", "GrantIssued")
    issued = events_named(session, ["GrantIssued"], dataset_id=item.dataset.lower())
    grants = [
        node.ledger.grants.get_grant(bytes.fromhex(event.args["grantId"][2:]))
        for event in reversed(issued)
        if int(event.args["granteeOrg"]) == task.requester_org
    ]
    if not grants:
        defaults = default_terms([spec.kind], asset_columns(session, item.dataset))
        return [_review(spec, item, task.fee, defaults)]
    now = node.ledger.client.latest_timestamp()
    reviews = []
    unreadable = TermViolation("termsHash", "the published terms do not match the chain")
    for grant in grants:
        terms = terms_of(node, grant)
        grant_id = "0x" + grant.grant_id.hex()
        state = _grant_state(grant, KINDS[spec.kind], now)
        reviews.append(
            TermsReviewOut(
                source="grant",
                grant_id=grant_id,
                grant_state=state,
                violation=str(unreadable),
                terms=[],
            )
            if terms is None
            else _review(spec, item, task.fee, terms, grant_id=grant_id, grant_state=state)
        )
    return reviews


def _grant_state(grant: Grant, kind: Kind, now: int) -> GrantState:
    """Why a grant could not have covered the task without approval, or ``usable``."""
    if grant.revoked:
        return "revoked"
    if now >= grant.expiry:
        return "expired"
    if grant.used >= grant.max_uses:
        return "used_up"
    return "usable" if grant.kinds & kind == kind else "other_kind"


def _review(
    spec: TaskSpec,
    item: SpecInput,
    fee: int,
    terms: GrantTerms,
    *,
    grant_id: str | None = None,
    grant_state: GrantState | None = None,
) -> TermsReviewOut:
    """The request beside ``terms`` (a grant's, or without ``grant_id`` the default terms),
    term by term; the term :func:`violation` names is broken."""
    broken = violation(spec, terms, item, fee=fee)
    uses = column_uses(spec, item)
    cap = [f"at most {terms.max_requester_set} keys"] if terms.max_requester_set else []
    if terms.max_requester_ratio is not None:
        cap.append(f"at most {terms.max_requester_ratio}× the owner's rows")
    rows = {
        "protocols": (spec.protocol, ", ".join(terms.protocols)),
        "columns": (
            "; ".join(f"{column}: {', '.join(used)}" for column, used in uses.items()),
            "; ".join(f"{column}: {', '.join(kept)}" for column, kept in terms.columns.items()),
        ),
        "outputs": (spec.output, ", ".join(terms.outputs)),
        "dealer": (
            "none" if spec.dealer_org is None else f"org {spec.dealer_org}",
            "any" if terms.dealer is None else f"org {terms.dealer}",
        ),
        "min_fee_wei": (f"{fee} wei", f"at least {terms.min_fee_wei} wei"),
        "min_result": (
            f"run by {spec.protocol}",
            f"at least {terms.min_result} rows" if terms.min_result > 1 else "no minimum",
        ),
        "max_requester_set": (f"run by {spec.protocol}", " and ".join(cap) or "no cap"),
    }
    checks = [
        TermCheckOut(
            term=term,
            requested=requested,
            allowed=allowed,
            kept=broken is None or broken.term != term,
        )
        for term, (requested, allowed) in rows.items()
    ]
    return TermsReviewOut(
        source="default" if grant_id is None else "grant",
        grant_id=grant_id,
        grant_state=grant_state,
        purpose=terms.purpose,
        violation=None if broken is None else str(broken),
        terms=checks,
    )


@router.post(
    "/{task_id}/{dataset_id}",
    response_model=ApprovalOut,
    responses={
        409: {
            "model": ErrorResponse,
            "description": "Conflicts with the ledger's state; or, to approve, the requester's "
            "node serves a spec that is not the task's (spec_mismatch)",
        },
        502: {
            "model": ErrorResponse,
            "description": "To approve: the requester's node does not serve the task's spec "
            "(requester_unreachable)",
        },
    },
)
def decide(
    task_id: TaskId,
    dataset_id: str,
    body: ApprovalIn,
    caller: DataOwner,
    node: NodeDep,
    session: SessionDep,
) -> ApprovalOut:
    """Approve or reject the use of a dataset by a pending task (signed on chain). Only a task
    whose spec the requester's node serves and the chain vouches for can be approved."""
    dataset = parse_hex32(dataset_id, "dataset id")
    ledger = node.ledger_for(caller.user.address)
    if body.decision == "approve":
        shown = approval_out(node, session, task_id, dataset)
        if shown.spec_status == "unreachable":
            raise ApiError(502, "requester_unreachable", shown.spec_message or "")
        if shown.spec_status == "mismatch":
            raise ApiError(409, "spec_mismatch", shown.spec_message or "")
        ledger.grants.approve(task_id, dataset)
    else:
        ledger.grants.reject(task_id, dataset)
    return approval_out(node, session, task_id, dataset)
