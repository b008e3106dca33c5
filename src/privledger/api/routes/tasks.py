"""Tasks: submit a spec (hashed on chain), follow its on-chain timeline, fetch the result."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext, suppress
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from weakref import WeakKeyDictionary

from anyio import to_thread
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, Insert, Row, Select, Table, and_, bindparam, or_
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from privledger.api.deps import Caller, Member, NodeDep, Operator, SessionDep, TaskId
from privledger.api.errors import ApiError, not_found
from privledger.api.routes.projects import check_task_project
from privledger.api.schemas import TaskEvent, TaskIn, TaskOut, TaskResources, TaskResult
from privledger.api.threads import chain_waits
from privledger.evm.contracts import Kind, Task, TaskStatus
from privledger.evm.indexer import references
from privledger.evm.ledger import Ledger
from privledger.node import results
from privledger.node.components import (
    KINDS,
    ComponentUnavailable,
    SpecRefused,
    component_for,
    protocol_id,
)
from privledger.node.context import NodeContext
from privledger.node.grants import ZERO32, choose_grant
from privledger.node.peer_spec import MAX_SPEC_BYTES
from privledger.node.spec import SpecInput, TaskSpec, parse_spec, spec_error
from privledger.node.usage import recorded_usage
from privledger.store.models import ChainEvent, ChainRef, LocalDataset, LocalTask, utc_now
from privledger.store.watch import task_changes

router = APIRouter(prefix="/tasks", tags=["tasks"])
MAX_RESULT_ITEMS = 1_000_000  # larger outputs are downloaded as a file

TIMELINE_EVENTS = (
    "TaskSubmitted",
    "ApprovalRequested",
    "InputApproved",
    "InputRejected",
    "TaskAuthorised",
    "TaskStarted",
    "DeliveryRecorded",
    "ResultAnchored",
    "AbsenceReported",
    "ParticipantAbsent",
    "TaskCompleted",
    "TaskFailed",
    "TaskExpired",
    "UsageRecorded",
    "FeeAllocated",
    "FeeRefunded",
    "TaskSettled",
)
MAX_WAIT_S = 30
StatusName = Literal["submitted", "authorised", "running", "completed", "failed", "settled"]
FINAL_STATUSES = ("failed", "settled")


def referring(
    connection: Connection, kind: str, value: str, names: Sequence[str]
) -> list[Row[Any]]:
    """The indexed events named one of ``names`` that refer to (``kind``, ``value``), in chain
    order, as (block number, tx hash, contract, event, args) rows: found through the indexer's
    references, so the lookup stays indexed as the chain grows."""
    return list(connection.execute(_referring(kind, tuple(names)), {"value": value}))


@lru_cache(maxsize=64)
def _referring(kind: str, names: tuple[str, ...]) -> Select[Any]:
    """The statement of :func:`referring`, built once per kind and names (the names spelled out
    as equalities, so nothing is expanded at each execution)."""
    return (
        sa_select(
            col(ChainEvent.block_number),
            col(ChainEvent.tx_hash),
            col(ChainEvent.contract),
            col(ChainEvent.event),
            col(ChainEvent.args),
        )
        .join(
            ChainRef,
            and_(
                col(ChainRef.tx_hash) == col(ChainEvent.tx_hash),
                col(ChainRef.log_index) == col(ChainEvent.log_index),
            ),
        )
        .where(or_(*(col(ChainRef.name) == name for name in names)))  # the (name, ...) index
        .where(col(ChainRef.kind) == kind, col(ChainRef.value) == bindparam("value"))
        .order_by(col(ChainEvent.block_number), col(ChainEvent.log_index))
    )


# (chain id, data registry, dataset id) -> owner org. An owner is set once, at registration, and
# is bound into the id (keccak of owner, schema hash and commitment), so a cached owner is never
# wrong; a dataset unknown to the chain is still refused by the submission's pre-flight.
_OWNERS: dict[tuple[int, str, bytes], int] = {}
_OWNERS_MAX = 65_536


def dataset_owner(node: NodeContext, dataset: bytes) -> int:
    """The organisation owning ``dataset``, read from the chain once per dataset."""
    key = (node.ledger.deployment.chain_id, node.ledger.data.address, dataset)
    owner = _OWNERS.get(key)
    if owner is None:
        owner = node.ledger.data.get_dataset(dataset).owner_org
        if len(_OWNERS) >= _OWNERS_MAX:
            _OWNERS.clear()
        _OWNERS[key] = owner
    return owner


def build_spec(node: NodeContext, body: TaskIn, session: Session | None = None) -> TaskSpec:
    """The canonical spec: owners read from chain; this org must own exactly one input (its
    dataset read in ``session`` if given, where :func:`own_rows` then finds it again)."""
    inputs = spec_inputs(body, lambda dataset: dataset_owner(node, bytes.fromhex(dataset[2:])))
    mine = [item.org for item in inputs].count(node.org_id)
    spec = task_spec(body, node.org_id, inputs)
    # an aggregator (horizontal FL) may train no rows of its own
    if mine > 1 or (mine == 0 and component_for(spec.protocol).holds_input(spec, node.org_id)):
        raise ApiError(
            400, "invalid_task", "a task joins one dataset of yours with one of a partner"
        )
    check_own_columns(node, [item for item in inputs if item.org == node.org_id], session)
    return spec


def spec_inputs(body: TaskIn, owner_of: Callable[[str], int]) -> list[SpecInput]:
    """The body's inputs, each with its dataset's owner."""
    return [
        SpecInput(
            dataset=item.dataset.lower(),
            org=owner_of(item.dataset),
            column=item.column,
            value_column=item.value_column,
            features=tuple(item.features) if item.features else None,
        )
        for item in body.inputs
    ]


def task_spec(body: TaskIn, requester: int, inputs: list[SpecInput]) -> TaskSpec:
    """The spec of ``body`` with its inputs' owners resolved (400 if its protocol's rules
    refuse it): the options the body sets (a null is not set) go to the protocol's model, which
    refuses by name any option its protocol does not take."""
    options = body.model_dump(
        exclude={"inputs", "fee_wei", "deadline_s"}, exclude_unset=True, exclude_none=True
    )
    try:
        return parse_spec(
            {**options, "protocol": body.protocol, "requester": requester, "inputs": inputs}
        )
    except ValidationError as exc:
        raise ApiError(400, "invalid_task", spec_error(exc)) from exc
    except ComponentUnavailable as exc:
        raise ApiError(400, "unknown_component", str(exc)) from exc
    except SpecRefused as exc:
        raise ApiError(400, "invalid_task", str(exc)) from exc


def check_own_columns(
    node: NodeContext, own: list[SpecInput], session: Session | None = None
) -> None:
    """Every column a task reads from this node's own dataset exists in it (400 otherwise). A
    dataset registered on chain but not held here fails when the worker looks for it. Read in
    ``session`` if given (else a session of its own)."""
    with nullcontext(session) if session is not None else Session(node.engine) as reading:
        for item in own:
            dataset = held_dataset(reading, item.dataset)
            if dataset is None:
                continue
            named = [item.column, *(item.features or ()), item.value_column]
            missing = [column for column in named if column and column not in dataset.columns]
            if missing:
                raise ApiError(
                    400,
                    "invalid_task",
                    f"your dataset {item.dataset} has no column {missing[0]!r}",
                )


def timeline_events(session: Session, task_id: int) -> list[TaskEvent]:
    """The task's timeline in chain order: the indexed events whose ``taskId`` is the task."""
    return [
        TaskEvent(
            block_number=row.block_number,
            tx_hash=row.tx_hash,
            contract=row.contract,
            event=row.event,
            args=row.args,
        )
        for row in referring(session.connection(), "task", str(task_id), TIMELINE_EVENTS)
    ]


def kind_name(kind: Kind) -> str:
    return kind.name.lower() if kind.name else str(int(kind))


def task_out(node: NodeContext, task: Task, session: SessionDep) -> TaskOut:
    node.indexer.sync()  # the timeline is as fresh as the status read from the chain
    local = session.exec(  # the columns shown, read fresh (no ORM object built)
        select(
            LocalTask.state, LocalTask.failure, LocalTask.protocol_seconds, LocalTask.bytes_sent
        ).where(LocalTask.task_id == task.task_id)
    ).first()
    state, failure, seconds, sent = local if local is not None else (None, None, None, None)
    usage = recorded_usage(session, task.task_id)
    timeline = timeline_events(session, task.task_id)
    return TaskOut(
        task_id=task.task_id,
        status=task.status.name.lower(),
        kind=kind_name(task.kind),
        spec_hash="0x" + task.spec_hash.hex(),
        requester_org=task.requester_org,
        participants=list(task.participants),
        inputs=["0x" + item.hex() for item in task.inputs],
        fee=task.fee,
        deadline=task.deadline,
        failure_reason=task.failure_reason,
        local_state=state,
        local_failure=failure,
        local_protocol_seconds=seconds,
        local_bytes_sent=sent,
        local_resources=None if usage is None else TaskResources(**asdict(usage)),
        timeline=timeline,
    )


@router.post("", response_model=TaskOut, status_code=201)
async def submit_task(
    body: TaskIn, caller: Operator, node: NodeDep, session: SessionDep
) -> TaskOut:
    """Submit a task: the spec's hash goes on chain with the fee; grants are used where they exist,
    otherwise the data's owners are asked to approve."""
    submission = await run_in_threadpool(_plan_task, node, caller, session, body)
    # the wait for the block holds a thread of its own kind, and no database connection: on a
    # chain with a block period, in-flight submissions are not bounded by the request threads.
    # The same thread then writes the task's row (one connection, taken and handed back, never
    # two at once): one trip between the event loop and a thread fewer
    return await to_thread.run_sync(
        submit_planned, node, session, submission, limiter=chain_waits()
    )


def _plan_task(node: NodeContext, caller: Caller, session: Session, body: TaskIn) -> Submission:
    spec = build_spec(node, body, session)
    check_task_project(node, spec)
    return plan_submission(
        node, caller, session, spec, fee_wei=body.fee_wei, deadline_s=body.deadline_s
    )


@dataclass(frozen=True)
class Submission:
    """A task ready to go on chain: its spec, the grants its inputs use, and who signs."""

    spec: TaskSpec
    ledger: Ledger
    grants: list[bytes]
    deadline: int
    fee_wei: int


def submit_planned(node: NodeContext, session: Session, submission: Submission) -> TaskOut:
    """Send a planned submission, wait for it to be mined and keep its spec here (all in this
    thread: for the routes that submit a task as part of another call)."""
    task_id, receipt = send_submission(submission)
    return record_submission(node, session, submission, task_id, receipt)


def plan_submission(
    node: NodeContext,
    caller: Caller,
    session: Session,
    spec: TaskSpec,
    *,
    fee_wei: int,
    deadline_s: int,
) -> Submission:
    """The grants the task's inputs use (a 400 naming the term every usable grant refuses it
    by) and its deadline by the chain's clock; the session's connection is handed back. A spec
    larger than its providers fetch (``MAX_SPEC_BYTES`` of canonical JSON) is a 413 here, before
    anything goes on chain: sent, it would only fail at the providers as ``SPEC_MISMATCH``, after
    its fee was escrowed and a use of each grant consumed."""
    size = len(spec.canonical_json())
    if size > MAX_SPEC_BYTES:
        raise ApiError(
            413,
            "spec_too_large",
            f"the task's spec is {size} bytes of canonical JSON; providers take at most "
            f"{MAX_SPEC_BYTES}",
        )
    ledger = node.ledger_for(caller.user.address)
    rows = own_rows(session, spec, node.org_id)
    grants = [
        ZERO32 if item.org == node.org_id else granted(node, spec, item, fee_wei, rows)
        for item in spec.inputs
    ]
    deadline = ledger.client.latest_timestamp() + deadline_s
    session.commit()  # only read: ends the transaction, so the connection goes back to the pool
    return Submission(spec, ledger, grants, deadline, fee_wei)


def send_submission(submission: Submission) -> tuple[int, Mapping[str, Any]]:
    """Send the submission and wait for it to be mined: the task's id and the receipt."""
    spec = submission.spec
    task_id, receipt = submission.ledger.tasks.submit_task_receipt(
        spec_hash=spec.hash,
        kind=KINDS[spec.kind],
        protocol=protocol_id(spec.protocol),
        inputs=[bytes.fromhex(item.dataset[2:]) for item in spec.inputs],
        grant_ids=submission.grants,
        participants=spec.participants,
        deadline=submission.deadline,
        fee=submission.fee_wei,
    )
    return task_id, receipt


def record_submission(
    node: NodeContext,
    session: Session,
    submission: Submission,
    task_id: int,
    receipt: Mapping[str, Any],
) -> TaskOut:
    """Keep the spec of the submitted task here; the task as its submission left it."""
    spec = submission.spec
    spec_hash = "0x" + spec.hash.hex()
    spec_json = spec.canonical_json().decode()
    connection = session.connection()
    inserted = connection.execute(
        _insert_new_task(connection.dialect.name),
        {"task_id": task_id, "spec_hash": spec_hash, "spec_json": spec_json, "at": utc_now()},
    )
    if inserted.first() is not None:  # the usual case: one statement
        session.commit()
        return submitted_out(node, task_id, spec, receipt)
    row = session.get(LocalTask, task_id)  # the worker saw the task already
    if row is not None and row.spec_hash != spec_hash:
        session.delete(row)  # a task of this id that the chain no longer has (reorganised away)
        session.flush()
        row = None
    if row is None:
        row = LocalTask(task_id=task_id, spec_hash=spec_hash, state="submitted")
    row.spec_json = spec_json
    session.add(row)
    session.commit()
    return submitted_out(node, task_id, spec, receipt)


@lru_cache(maxsize=4)
def _insert_new_task(dialect: str) -> Insert:
    """The submitted task's row, unless the task has one already (the worker may have seen it
    first): an insert that skips a conflict (SQLite's and PostgreSQL's ``ON CONFLICT DO
    NOTHING``), built once per dialect."""
    table = cast(Table, LocalTask.__table__)  # type: ignore[attr-defined]
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(table)
        .values(
            task_id=bindparam("task_id"),
            spec_hash=bindparam("spec_hash"),
            spec_json=bindparam("spec_json"),
            state="submitted",
            updated_at=bindparam("at"),
        )
        .on_conflict_do_nothing(index_elements=[table.c.task_id])
        .returning(table.c.task_id)  # a row when inserted (rowcount: -1 in psycopg's pipeline)
    )


def own_rows(session: Session, spec: TaskSpec, org_id: int) -> int | None:
    """The rows of this node's own input to a task, if it holds it as a dataset."""
    mine = next((item for item in spec.inputs if item.org == org_id), None)
    dataset = None if mine is None else held_dataset(session, mine.dataset)
    return None if dataset is None else dataset.row_count


@dataclass(frozen=True)
class HeldDataset:
    """What a submission needs of a dataset this node holds."""

    columns: tuple[str, ...]
    row_count: int


_HELD = "privledger.held_datasets"  # the session's info key of what held_dataset read
# per node database (tenants each have their own): dataset id -> what held_dataset found there.
# A held dataset's columns and rows are bound into its id (the schema hash and the content
# commitment it was registered with), so what was found is never stale; a dataset not found is
# looked for again at the next request (it may have been registered since).
_HELD_FOUND: WeakKeyDictionary[Engine, dict[str, HeldDataset]] = WeakKeyDictionary()
_HELD_FOUND_MAX = 65_536


def held_dataset(session: Session, dataset: str) -> HeldDataset | None:
    """The columns and rows of ``dataset`` (0x hex) if this node holds it: read once per node
    database (see :data:`_HELD_FOUND`), else once per session (a request's: the columns' check
    and the grant's set-size cap both want it), in one plain query rather than as a table
    object."""
    dataset = dataset.lower()
    read: dict[str, HeldDataset | None] = session.info.setdefault(_HELD, {})
    if dataset in read:
        return read[dataset]
    engine = session.get_bind()
    found = _HELD_FOUND.get(engine, {}).get(dataset) if isinstance(engine, Engine) else None
    if found is None:
        row = session.connection().execute(_held_dataset(), {"dataset": dataset}).first()
        found = None if row is None else HeldDataset(tuple(row[0]), int(row[1]))
        if found is not None and isinstance(engine, Engine):
            known = _HELD_FOUND.setdefault(engine, {})
            if len(known) >= _HELD_FOUND_MAX:
                known.clear()
            known[dataset] = found
    read[dataset] = found
    return found


@lru_cache(maxsize=1)
def _held_dataset() -> Select[list[str], int]:
    return sa_select(col(LocalDataset.columns), col(LocalDataset.row_count)).where(
        col(LocalDataset.dataset_id) == bindparam("dataset")
    )


def granted(
    node: NodeContext, spec: TaskSpec, item: SpecInput, fee_wei: int, rows: int | None
) -> bytes:
    """The grant the input runs under, zero to ask its owner; 400 naming the term that every
    usable grant refuses the task by."""
    choice = choose_grant(node, spec, item, fee=fee_wei, requester_rows=rows)
    if choice.refused is not None and choice.grant_id == ZERO32:
        raise ApiError(
            400,
            "terms_violation",
            f"the grant on {item.dataset} refuses the task: {choice.refused}",
        )
    return choice.grant_id


def submitted_out(
    node: NodeContext, task_id: int, spec: TaskSpec, receipt: Mapping[str, Any]
) -> TaskOut:
    """The task as its submission left it, read from the submission's own events: no chain read
    and no wait for the indexer (``GET /tasks/{id}`` shows it as it stands later)."""
    events = [
        event
        for event in node.indexer.receipt_events(receipt)
        if event["event"] in TIMELINE_EVENTS and ("task", str(task_id)) in references(event["args"])
    ]
    submitted = next(event["args"] for event in events if event["event"] == "TaskSubmitted")
    authorised = any(event["event"] == "TaskAuthorised" for event in events)
    return TaskOut(
        task_id=task_id,
        status=(TaskStatus.AUTHORISED if authorised else TaskStatus.SUBMITTED).name.lower(),
        kind=kind_name(Kind(int(submitted["kind"]))),
        spec_hash=submitted["specHash"],
        requester_org=int(submitted["requesterOrg"]),
        participants=list(spec.participants),
        inputs=["0x" + bytes.fromhex(item.dataset[2:]).hex() for item in spec.inputs],
        fee=int(submitted["fee"]),
        deadline=int(submitted["deadline"]),
        failure_reason=0,
        local_state="submitted",
        local_failure=None,
        local_protocol_seconds=None,
        local_bytes_sent=None,
        timeline=[
            TaskEvent(
                block_number=event["block_number"],
                tx_hash=event["tx_hash"],
                contract=event["contract"],
                event=event["event"],
                args=event["args"],
            )
            for event in events
        ],
    )


@router.get("", response_model=list[TaskOut])
def list_tasks(_caller: Member, node: NodeDep, session: SessionDep) -> list[TaskOut]:
    """Tasks this node took part in, newest first."""
    rows = session.exec(select(LocalTask).order_by(col(LocalTask.task_id).desc())).all()
    return [task_out(node, node.ledger.tasks.get_task(row.task_id), session) for row in rows]


WaitS = Annotated[
    float,
    Query(
        alias="waitS",
        ge=0,
        le=MAX_WAIT_S,
        description=f"long-poll: wait up to this many seconds (at most {MAX_WAIT_S}) for a change",
    ),
]
UnlessStatus = Annotated[
    StatusName | None,
    Query(
        alias="unlessStatus",
        description="with waitS: answer as soon as the status is not this one (the status of "
        "your last answer); without it, as soon as the task is settled or failed",
    ),
]


@router.get("/{task_id}", response_model=TaskOut)
async def get_task(
    task_id: TaskId,
    _caller: Member,
    node: NodeDep,
    session: SessionDep,
    wait_s: WaitS = 0,
    unless_status: UnlessStatus = None,
) -> TaskOut:
    """A task's on-chain record and timeline, and this node's part in it.

    **Long-poll** instead of polling: with `waitS=N` the answer waits, up to N seconds, until the
    task's status differs from `unlessStatus` (or, without `unlessStatus`, until the task is
    `settled` or `failed`) and comes at once when it does; when the time is up it comes anyway
    with the status as it stands, so compare the status to tell which. A client following a task
    asks `GET /tasks/7?waitS=25&unlessStatus=<status of its last answer>` in a loop. The node
    wakes the call when it indexes an event of the task or its worker records progress on it;
    nothing polls while it waits, so a waiting call costs the node nothing."""
    task = await changed_task(node, task_id, wait_s, unless_status)
    return await run_in_threadpool(task_out, node, task, session)


async def changed_task(
    node: NodeContext, task_id: int, wait_s: float, unless_status: str | None
) -> Task:
    """The task read from the chain once its status is not ``unless_status`` (without it: once
    it is final), or when ``wait_s`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    with task_changes.watching(task_id) as changed:
        while True:
            changed.clear()  # before reading: a change from now on wakes the wait below
            task = await run_in_threadpool(node.ledger.tasks.get_task, task_id)
            status = task.status.name.lower()
            waiting = status == unless_status if unless_status else status not in FINAL_STATUSES
            remaining = deadline - loop.time()
            if not waiting or remaining <= 0:
                return task
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)


@router.get("/{task_id}/result", response_model=TaskResult)
def get_result(task_id: TaskId, _caller: Operator, session: SessionDep) -> TaskResult:
    """The task's output, for output recipients only, with the salt opening its anchored digest:
    the items of the result file, in its order. An output of more than
    :data:`MAX_RESULT_ITEMS` items is only downloadable as the file."""
    local, path = _result_of(session, task_id)
    try:
        items = results.read(path, MAX_RESULT_ITEMS)
    except results.TooManyItems as exc:
        raise ApiError(
            409, "too_large", f"{exc}: download GET /tasks/{task_id}/result/file"
        ) from exc
    except results.ResultFormatError as exc:
        raise ApiError(409, "unreadable_result", f"the result file on this node: {exc}") from exc
    return TaskResult(
        task_id=task_id,
        items=items,
        salt=local.salt or "",
        result_digest=local.result_digest or "",
        transcript_hash=local.transcript_hash or "",
    )


@router.get("/{task_id}/result/file", response_class=FileResponse)
def get_result_file(task_id: TaskId, _caller: Operator, session: SessionDep) -> FileResponse:
    """The result file exactly as its SHA-256 went into the anchored digest: JSON Lines, each
    item one JSON string on a line of its own (``application/jsonl``); the salt is in the
    ``X-Result-Salt`` header."""
    local, path = _result_of(session, task_id)
    return FileResponse(
        path,
        media_type=results.MEDIA_TYPE,
        filename=f"task-{task_id}{results.SUFFIX}",
        headers={"X-Result-Salt": local.salt or "", "X-Result-Digest": local.result_digest or ""},
    )


def _result_of(session: SessionDep, task_id: int) -> tuple[LocalTask, Path]:
    """The task's record on this node and its result file."""
    local = session.get(LocalTask, task_id)
    if local is None:
        raise not_found(f"task {task_id} on this node")
    if local.result_path is None or local.salt is None or local.result_digest is None:
        raise ApiError(
            404, "no_result", f"this node holds no output of task {task_id} (state {local.state})"
        )
    path = Path(local.result_path)
    if not path.is_file():
        raise ApiError(404, "no_result", f"the result file of task {task_id} is gone")
    return local, path
