"""The worker: follows the ledger, runs the tasks this organisation takes part in, anchors results,
settles the tasks it requested.

It fails closed. Before touching data it re-reads the task from the chain, checks the fetched spec
against the spec hash on chain, and checks every foreign input's authorisation as it stands now (a
grant revoked or expired since submission stops the task). Anything that goes wrong is recorded on
chain as a failure with a reason, which refunds the requester; a result is anchored only once the
protocol finished.

It follows the chain when the chain changes its mind: when the index forgets blocks (a
reorganisation took them back), the worker reads the forgotten tasks' events again, fills the
nonces its accounts lost (:meth:`privledger.evm.client.ChainClient.close_nonce_gaps`), puts log
entries whose batch vanished in a new batch, and brings its record of each forgotten task in line
with the new chain (:meth:`Worker._reconcile`): an anchor that vanished is sent again (the same
digest: the salt and output are kept), a settlement that vanished is sent again, a failure this
node recorded is recorded again, and a task whose submission vanished is recorded as failed with
a ``CHAIN_REORG`` reason. The contract settles a task once (``settleTask`` needs ``Completed``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from sqlmodel import Session, col, select

from privledger.evm.contracts import (
    MAX_UNITS,
    ApprovalStatus,
    FailureReason,
    Grant,
    Task,
    TaskLedger,
    TaskStatus,
)
from privledger.evm.errors import ChainError, ChainRevert
from privledger.evm.hashing import keccak256
from privledger.evm.indexer import Forgotten
from privledger.node import results
from privledger.node.absence import AbsenceWatch
from privledger.node.audit import anchor_pending_audit, record
from privledger.node.components import Component, ComponentUnavailable, SpecRefused, resolve
from privledger.node.context import NodeContext
from privledger.node.datasets import DatasetFileError, read_key_column, read_rows
from privledger.node.grants import consumed_grants, lapse, terms_of
from privledger.node.logbook import release_vanished
from privledger.node.metrics import metrics_of
from privledger.node.peer_spec import checked_spec, fetch_spec
from privledger.node.pricing import price_violation
from privledger.node.projects import project_violation
from privledger.node.release import LastMessages
from privledger.node.runners import InputForm, Run, TaskRefused, Withheld
from privledger.node.services import anchor_pending_calls, log_call
from privledger.node.settlement import settlement_record
from privledger.node.spec import PairPsiSpec, SpecInput, TaskSpec, parse_canonical
from privledger.node.terms import GrantTerms, violation
from privledger.node.transport import HttpWire, PeerUnreachable, SecureChannel, open_channel
from privledger.node.usage import Usage, UsageWindow
from privledger.observability.logs import task_context
from privledger.protocols.channel import Channel, ChannelError, ChannelTimeout
from privledger.protocols.mpc.dealer import Dealer
from privledger.store.events import events_after
from privledger.store.models import (
    AuditEntry,
    LocalDataset,
    LocalModel,
    LocalTask,
    PsiService,
    ServiceCall,
    as_utc,
)

logger = logging.getLogger(__name__)

FINAL_STATES = {"anchored", "failed", "settled", "done"}
# the longest a dealer serves one task: the joint statistics and FL runs we measured take under a
# minute; parties stalled past this fail the task and free the dealer's thread for new work
DEALER_BUDGET_S = 900.0
# a provider that records a delivery keeps this long before the task's deadline to anchor (a
# transaction mined on a chain of slow blocks, with retries), and refuses to deliver with less
# than twice that left
ANCHOR_MARGIN_S = 20.0
TASK_EVENTS = ("TaskAuthorised", "TaskCompleted", "TaskFailed", "TaskExpired")
ACTIVE = {TaskStatus.AUTHORISED, TaskStatus.RUNNING}
LOST = "CHAIN_REORG"  # the failure of a task whose submission a reorganisation took back


@dataclass(frozen=True)
class Outcome:
    output: list[str] | Path | None  # items, a result file (node.results), or None: no output
    transcript_hash: bytes
    matched: int
    seconds: float
    usage: Usage  # this node's CPU, memory and bytes for its part (privledger.node.usage)


def result_digest(task_id: int, org_id: int, salt: bytes, output: bytes) -> bytes:
    """keccak256(abi.encode(taskId, participant, salt, sha256(output))) — what a worker anchors."""
    return digest_of_hash(task_id, org_id, salt, hashlib.sha256(output).digest())


def digest_of_hash(task_id: int, org_id: int, salt: bytes, output_sha256: bytes) -> bytes:
    """:func:`result_digest` from the output's SHA-256 (for outputs streamed to a file)."""
    encoded = encode(
        ["uint256", "uint256", "bytes32", "bytes32"], [task_id, org_id, salt, output_sha256]
    )
    return keccak256(encoded)


def combined_transcript(channels: Mapping[int, Channel]) -> bytes:
    """One peer: that channel's transcript (equal on both ends). Several: sha256 over each
    channel's transcript in peer-org order (each participant anchors its own view)."""
    if len(channels) == 1:
        return next(iter(channels.values())).transcript_hash
    digest = hashlib.sha256()
    for org in sorted(channels):
        digest.update(org.to_bytes(8, "big") + channels[org].transcript_hash)
    return digest.digest()


def _component(spec: TaskSpec) -> Component:
    """The installed component the spec names, at its version and code hash, taking the spec."""
    try:
        component = resolve(spec.component, spec.protocol)
        component.check(spec)
    except ComponentUnavailable as exc:
        raise TaskRefused(FailureReason.COMPONENT_MISMATCH, str(exc)) from exc
    except SpecRefused as exc:
        raise TaskRefused(FailureReason.SPEC_MISMATCH, str(exc)) from exc
    return component


def _holds(row: LocalTask, spec_hash: bytes) -> bool:
    """Whether the stored record is of the task with this spec hash on chain (not of an earlier
    task of the same id that the chain no longer has)."""
    return row.spec_hash == "0x" + spec_hash.hex()


def _lost(row: LocalTask) -> bool:
    """Whether the record is of a task whose submission a reorganisation took back."""
    return (row.failure or "").startswith(LOST)


@contextmanager
def _closing(channels: Mapping[int, SecureChannel]) -> Iterator[None]:
    """Close a task's channels after the block; if it failed, abandon them without close frames
    so that this node's reason is the one recorded on chain, not the peers' "peer closed"."""
    try:
        yield
    except BaseException:
        for channel in channels.values():
            channel.abandon()
        raise
    finally:
        for channel in channels.values():
            channel.close()


class Worker:
    def __init__(self, node: NodeContext, *, max_parallel: int = 4) -> None:
        self.node = node
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="task")
        # dealer duties never take the last thread: tasks stalled on purpose keep it from new work
        self._dealing = threading.BoundedSemaphore(max(1, max_parallel - 1))
        # nor do one other organisation's tasks take more than half of them: a requester whose
        # node trickles its specs, or whose tasks stall, would hold every thread and fail the
        # tasks of everyone else (those beyond the half wait for the next tick)
        self._per_requester = max(1, max_parallel // 2)
        self._running_for: Counter[int] = Counter()
        self._busy: set[int] = set()
        self._ignored: set[int] = set()
        self._seen = 0  # id of the last task event taken from the index
        self._to_run: set[int] = set()  # authorised tasks this node has not finished
        self._to_settle: set[int] = set()  # completed tasks this node has not settled or closed
        self._failed: set[int] = set()  # tasks failed on chain while running here
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._audit_anchored = time.monotonic()
        self._absences = AbsenceWatch(node.ledger.tasks)  # open tasks this node closes
        self._rewinds: list[Forgotten] = []  # what the index forgot, not followed yet
        self._unreconciled: set[int] = set()  # forgotten tasks busy here when last followed
        self._metrics = metrics_of(node)
        self._metrics.watch_worker(self._queues)

    # --- loop -------------------------------------------------------------------------------
    def start(self) -> None:
        self.node.indexer.on_rewind(self._rewound)
        self._recover()
        self._thread = threading.Thread(target=self._loop, name="worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("worker tick failed; retrying")
            self._stop.wait(self.node.settings.worker_interval_s)

    def tick(self) -> None:
        """Index new blocks, start authorised tasks, settle completed ones.

        Task events are read once each (after :attr:`_seen`); the tasks they open stay in
        :attr:`_to_run` / :attr:`_to_settle` until this node's record of them is final, so a
        tick costs what is open, not the whole history."""
        self.node.indexer.sync()
        self._follow_rewinds()
        with Session(self.node.engine) as session:
            for event in events_after(session, TASK_EVENTS, self._seen):
                task_id = int(event.args["taskId"])
                if event.event == "TaskAuthorised":
                    self._to_run.add(task_id)
                elif event.event == "TaskCompleted":
                    self._to_settle.add(task_id)
                else:
                    self._failed.add(task_id)
                self._seen = max(self._seen, event.id or 0)
            open_ids = self._to_run | self._to_settle
            rows = session.exec(select(LocalTask).where(col(LocalTask.task_id).in_(open_ids)))
            local = {row.task_id: row for row in rows}
        with self._lock:
            for tasks in (self._to_run, self._to_settle, self._failed):
                tasks -= self._ignored
        for task_id in sorted(self._to_run):
            row = local.get(task_id)
            if row is None or row.state not in FINAL_STATES or _lost(row):  # lost: id taken anew
                self._submit(task_id, self._run)
            else:
                self._to_run.discard(task_id)
        with self._lock:
            running = set(self._busy)
        # Another participant gave up: stop waiting for its frames. A task that is not running
        # here needs nothing more: when it starts, it reads the failure from the chain first.
        self._failed &= running
        for task_id in sorted(self._failed):
            self.node.mailbox.discard(task_id)
        for task_id in sorted(self._to_settle):
            row = local.get(task_id)
            if row is not None and row.state == "anchored" and row.spec_json is not None:
                self._submit(task_id, self._settle)
            elif row is not None and row.state in FINAL_STATES - {"anchored"}:
                self._to_settle.discard(task_id)
        for task_id in self._absences.due():
            self._submit(task_id, self._absences.check)
        anchor_pending_calls(self.node)
        now = time.monotonic()
        if now - self._audit_anchored >= self.node.settings.audit_anchor_s:
            anchor_pending_audit(self.node)
            self._audit_anchored = now

    def _queues(self) -> dict[str, int]:
        """The sizes of the worker's queues, for the node's metrics (read from another thread:
        a set's length is read whole)."""
        return {
            "busy": len(self._busy),
            "to_run": len(self._to_run),
            "to_settle": len(self._to_settle),
        }

    def _submit(self, task_id: int, job: Callable[[int], None]) -> None:
        with self._lock:
            if task_id in self._busy or task_id in self._ignored:
                return
            self._busy.add(task_id)

        def wrapped() -> None:
            try:
                with task_context(task_id):  # every line logged meanwhile names the task
                    job(task_id)
            finally:
                with self._lock:
                    self._busy.discard(task_id)

        self._pool.submit(wrapped)

    # --- following a reorganisation -----------------------------------------------------------
    def _rewound(self, forgotten: Forgotten) -> None:
        """The index forgot blocks (called in whichever thread synced): followed next tick; a
        new task may take the id of a forgotten one at once, so their frames are let in now."""
        self.node.mailbox.reopen(forgotten.tasks)
        with self._lock:
            self._rewinds.append(forgotten)

    def _follow_rewinds(self) -> None:
        """Read the new chain's task events again (their ids may be the forgotten ones'), fill
        the nonces the chain took back, put log entries whose batch vanished in a new batch, and
        reconcile each forgotten task this node keeps a record of."""
        with self._lock:
            rewinds, self._rewinds = self._rewinds, []
            busy = set(self._busy)
        tasks = set(self._unreconciled)
        if rewinds:
            self._seen = min(self._seen, *(forgotten.last_event_id for forgotten in rewinds))
            self.node.ledger.client.close_nonce_gaps()
            gone = set().union(*(forgotten.transactions for forgotten in rewinds))
            released = sum(release_vanished(self.node, t, gone) for t in (AuditEntry, ServiceCall))
            if released:
                self._audit_anchored = float("-inf")  # anchor them again this tick
            tasks |= set().union(*(forgotten.tasks for forgotten in rewinds))
        self._unreconciled = tasks & busy  # running here: their own outcome settles them
        for task_id in sorted(tasks - busy):
            try:
                with task_context(task_id):
                    self._reconcile(task_id)
            except ChainError as exc:
                logger.warning("task %d not reconciled with the chain yet: %s", task_id, exc)
                self._unreconciled.add(task_id)

    def _reconcile(self, task_id: int) -> None:
        """Bring this node's record of a task whose events the index forgot in line with the
        chain as it is now."""
        with Session(self.node.engine) as session:
            row = session.get(LocalTask, task_id)
        if row is None:
            return  # nothing of ours: its events, read again, are enough
        tasks = self.node.ledger.tasks
        task = tasks.get_task(task_id) if task_id <= tasks.task_count() else None
        if task is None or not _holds(row, task.spec_hash):
            if not _lost(row):
                logger.warning("task %d: its submission is no longer on the chain", task_id)
                self._record_row(
                    row,
                    state="failed",
                    failure=f"{LOST}: a reorganisation took back the submission of this task; "
                    "submit it again",
                )
            return
        if task.status in ACTIVE:
            self._restore_on_chain(task, row)
        elif task.status is TaskStatus.COMPLETED and row.result_digest is not None:
            if row.state != "anchored":
                self._record(task_id, task.spec_hash, state="anchored")  # its settlement vanished
            self._to_settle.add(task_id)

    def _restore_on_chain(self, task: Task, row: LocalTask) -> None:
        """An open task this node had anchored or failed: send the anchor (the same digest) or
        the failure again if the chain lost it."""
        tasks, org = self.node.ledger.tasks, self.node.org_id
        if row.state == "failed" and row.failure:
            name = row.failure.split(":", 1)[0]
            reason = FailureReason.__members__.get(name, FailureReason.PROTOCOL_ERROR)
            logger.warning("task %d: recording its failure (%s) again", task.task_id, name)
            try:
                tasks.fail_task(task.task_id, int(reason))
            except ChainRevert as exc:
                logger.info("task %d not failed again: %s", task.task_id, exc)
                if exc.error == "TaskLedgerDelivered":
                    self._absences.close_at_deadline(task.task_id)
            return
        if row.result_digest is None or row.transcript_hash is None:
            return
        if tasks.anchor_of(task.task_id, org) == bytes(32):
            logger.warning("task %d: anchoring its result again", task.task_id)
            try:
                tasks.anchor_result(
                    task.task_id,
                    bytes.fromhex(row.result_digest[2:]),
                    bytes.fromhex(row.transcript_hash[2:]),
                    min(row.result_size or 0, MAX_UNITS),
                )
            except ChainRevert as exc:  # e.g. its deadline passed: the task expires instead
                logger.warning("task %d not anchored again: %s", task.task_id, exc)
                return
        if row.state != "anchored":
            self._record(task.task_id, task.spec_hash, state="anchored")
        self._absences.watch(task.task_id)

    def _record_row(self, row: LocalTask, **fields: object) -> None:
        """Update the stored record ``row`` as it is (whatever task the chain now holds)."""
        with Session(self.node.engine) as session:
            stored = session.get(LocalTask, row.task_id)
            if stored is None or stored.spec_hash != row.spec_hash:
                return  # replaced meanwhile (a new task took the id)
            for name, value in fields.items():
                setattr(stored, name, value)
            stored.updated_at = datetime.now(UTC)
            session.add(stored)
            session.commit()

    def _recover(self) -> None:
        """A task that was mid-protocol when the node stopped cannot resume: fail it cleanly --
        unless this node had recorded, as a provider, the delivery of the requester's output:
        then it anchors as told nothing, as it would have had the requester withheld its part.
        One this node anchored may still wait for absent parties, and one whose failure the
        ledger refused (a provider had recorded a delivery) for its deadline."""
        with Session(self.node.engine) as session:
            stale = session.exec(select(LocalTask).where(LocalTask.state == "running")).all()
            anchored = session.exec(select(LocalTask).where(LocalTask.state == "anchored")).all()
            failed = session.exec(
                select(LocalTask.task_id, LocalTask.updated_at).where(LocalTask.state == "failed")
            ).all()
        for row in stale:
            with task_context(row.task_id):
                delivered = self._delivered(row.task_id)
                if delivered is not None:
                    self._anchor_told_nothing(delivered)
                    continue
                self._fail(row.task_id, FailureReason.PROTOCOL_ERROR, "node restarted mid-protocol")
        for row in anchored:
            self._absences.watch(row.task_id)
        # a failure older than the longest a task may run closed with its deadline, if not before
        since = datetime.now(UTC) - timedelta(seconds=TaskLedger.MAX_DURATION_S)
        for task_id, updated_at in failed:
            if as_utc(updated_at) >= since:
                self._absences.close_at_deadline(task_id)  # forgotten at once if closed

    # --- running a task ---------------------------------------------------------------------
    def _run(self, task_id: int) -> None:
        task = self.node.ledger.tasks.get_task(task_id)
        if self.node.org_id not in task.participants:
            with self._lock:
                self._ignored.add(task_id)
            return
        if task.status not in ACTIVE:
            state = "failed" if task.status is TaskStatus.FAILED else "done"
            self._record(task_id, task.spec_hash, state=state)
            return
        if not self._take_requester_slot(task.requester_org):
            return  # still to run: the next tick submits it again
        try:
            self._run_active(task)
        finally:
            with self._lock:
                self._running_for[task.requester_org] -= 1

    def _take_requester_slot(self, requester_org: int) -> bool:
        """Whether a task of ``requester_org`` may run now (always for this organisation's own)."""
        with self._lock:
            busy = self._running_for[requester_org] >= self._per_requester
            if busy and requester_org != self.node.org_id:
                return False
            self._running_for[requester_org] += 1
            return True

    def _run_active(self, task: Task) -> None:
        task_id = task.task_id
        self._record(task_id, task.spec_hash, state="running")
        self._metrics.running(task.kind).inc()
        try:
            spec = self._verified_spec(task)
            component = _component(spec)
            terms = self._check_authorisation(task, spec)
            self._check_policy(spec)
            self._check_project(spec)
            service = self._called_service(task, spec)
            if spec.requester == self.node.org_id:
                self._start_on_chain(task_id)
            self._execute(task, spec, component, terms)  # runs it and anchors its outcome
            if service is not None:
                self._log_call(task, service.name, "ran")
        except TaskRefused as refused:
            self._fail(task_id, refused.reason, str(refused))
        except (ChannelTimeout, PeerUnreachable) as exc:
            self._fail(task_id, FailureReason.PEER_UNREACHABLE, f"peer unreachable: {exc}")
        except ChannelError as exc:
            self._fail(task_id, FailureReason.PROTOCOL_ERROR, f"channel: {exc}")
        except Exception as exc:  # fail closed on anything unexpected
            logger.exception("task %d failed", task_id)
            self._fail(task_id, FailureReason.PROTOCOL_ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            self.node.mailbox.discard(task_id)
            self._metrics.running(task.kind).dec()

    def _verified_spec(self, task: Task) -> TaskSpec:
        raw = self._spec_bytes(task)
        spec = checked_spec(raw, task)
        self._record(task.task_id, task.spec_hash, spec_json=raw.decode())
        return spec

    def _spec_bytes(self, task: Task) -> bytes:
        with Session(self.node.engine) as session:
            row = session.get(LocalTask, task.task_id)
            if row is not None and row.spec_json is not None and _holds(row, task.spec_hash):
                return row.spec_json.encode()
        return fetch_spec(self.node, task)

    def _check_authorisation(self, task: Task, spec: TaskSpec) -> GrantTerms | None:
        """Every participant must still be active, every foreign input covered, now, by the grant
        consumed at submission (and, for a derived grant, its parents: :func:`lapse`) or by an
        owner's approval, and the task must keep the terms of the grant on this organisation's
        input (TERMS_VIOLATION otherwise); those terms, None if an approval covers it."""
        terms = None
        ledger = self.node.ledger
        self._check_active(task)
        now = ledger.client.latest_timestamp()
        grants = consumed_grants(self.node, task.task_id)
        for item in spec.inputs:
            if item.org == spec.requester:
                continue
            dataset = bytes.fromhex(item.dataset[2:])
            grant = next((g for g in grants if g.dataset_id == dataset), None)
            if grant is not None:
                lapsed = lapse(self.node, grant, now)  # its parents' too, for a derived grant
                if lapsed is not None:
                    raise TaskRefused(
                        FailureReason.GRANT_INVALID, f"the grant on {item.dataset} {lapsed}"
                    )
                if item.org == self.node.org_id:
                    terms = self._kept_terms(task, spec, item, grant)
            elif ledger.grants.approval_of(task.task_id, dataset) is not ApprovalStatus.APPROVED:
                raise TaskRefused(
                    FailureReason.GRANT_INVALID, f"no grant or approval covers {item.dataset}"
                )
            if ledger.data.get_dataset(dataset).retired:
                raise TaskRefused(
                    FailureReason.GRANT_INVALID, f"dataset {item.dataset} was retired"
                )
        return terms

    def _kept_terms(self, task: Task, spec: TaskSpec, item: SpecInput, grant: Grant) -> GrantTerms:
        """The terms of the grant on this organisation's input, which the task must keep."""
        terms = terms_of(self.node, grant)
        if terms is None:
            raise TaskRefused(
                FailureReason.TERMS_VIOLATION, "the grant's terms do not match the chain"
            )
        problem = violation(spec, terms, item, fee=task.fee)
        if problem is not None:
            raise TaskRefused(FailureReason.TERMS_VIOLATION, str(problem))
        return terms

    def _check_policy(self, spec: TaskSpec) -> None:
        """This organisation's classification policy for the input it provides to another
        organisation's task (F17); what a requester does with its own data is its own call."""
        mine = next((item for item in spec.inputs if item.org == self.node.org_id), None)
        if mine is None or spec.requester == self.node.org_id:
            return
        level = self.node.ledger.data.get_dataset(bytes.fromhex(mine.dataset[2:])).level
        problem = self.node.policies.violation(level, spec.kind, spec.output)
        if problem is not None:
            raise TaskRefused(FailureReason.POLICY_VIOLATION, problem)

    def _check_project(self, spec: TaskSpec) -> None:
        """The project the task is tagged with, as the chain holds it now
        (:mod:`privledger.node.projects`)."""
        problem = project_violation(self.node.ledger.projects, spec)
        if problem is not None:
            raise TaskRefused(FailureReason.POLICY_VIOLATION, problem)

    def _called_service(self, task: Task, spec: TaskSpec) -> PsiService | None:
        """The service of ours this task calls, checked against its published terms."""
        if (
            not isinstance(spec, PairPsiSpec)
            or spec.service is None
            or spec.requester == self.node.org_id
        ):
            return None
        mine = next(item for item in spec.inputs if item.org == self.node.org_id)
        with Session(self.node.engine) as session:
            service = session.get(PsiService, spec.service)
        problem = None
        if service is None or not service.active:
            problem = f"no active service {spec.service!r}"
        elif (service.dataset_id, service.column) != (mine.dataset.lower(), mine.column):
            problem = "the task does not use the service's dataset and column"
        elif service.output != spec.output:
            problem = f"the service releases output to {service.output}, not {spec.output}"
        elif task.fee < service.price_wei:
            problem = f"the fee {task.fee} is below the service price {service.price_wei}"
        if problem is not None:
            self._log_call(task, spec.service, f"refused: {problem}")
            raise TaskRefused(FailureReason.POLICY_VIOLATION, problem)
        return service

    def _log_call(self, task: Task, service: str, outcome: str) -> None:
        log_call(
            self.node,
            service=service,
            task_id=task.task_id,
            caller_org=task.requester_org,
            spec_hash="0x" + task.spec_hash.hex(),
            outcome=outcome,
        )

    def _start_on_chain(self, task_id: int) -> None:
        try:
            self.node.ledger.tasks.start_task(task_id)
        except ChainRevert as exc:
            logger.info("task %d not started on chain: %s", task_id, exc)

    def _execute(
        self, task: Task, spec: TaskSpec, component: Component, terms: GrantTerms | None
    ) -> None:
        """Run this party's side of the task and anchor its outcome. A provider anchors before
        its last messages leave (:mod:`privledger.node.release`), so that a requester holding
        the result can no longer fail the task; the others once every peer has every frame."""
        if spec.dealer_org == self.node.org_id:
            dealt = self._deal(task, spec)
            self._anchor(task, dealt)
            self._audit_usage(task, dealt.usage)
            return
        mine = next((item for item in spec.inputs if item.org == self.node.org_id), None)
        if mine is None and component.holds_input(spec, self.node.org_id):
            raise TaskRefused(FailureReason.SPEC_MISMATCH, "this organisation holds no input")
        channels = {org: self._channel(task, org) for org in spec.peers_of(self.node.org_id)}
        provider = mine is not None and spec.requester != self.node.org_id
        withheld = Withheld()
        held = (
            LastMessages(
                channels,
                record_delivery=lambda: self._record_delivery(task, terms, withheld.units),
                requester=spec.requester,
            )
            if provider
            else None
        )
        with _closing(channels), UsageWindow() as usage:
            for channel in channels.values():
                channel.connect()  # the connections come up while the input loads
            rows, source, column = (
                self._input(task.task_id, mine, component.input_form(spec))
                if mine is not None
                else ([], None, None)  # an aggregator without data of its own
            )
            run = Run(
                self.node,
                task,
                spec,
                held.views if held is not None else dict(channels),
                rows,
                source,
                self._min_release(spec, terms),
                column,
                terms,
                held=held,
                withheld=withheld,
            )
            self._meet(channels)
            started = time.perf_counter()
            logger.info(
                "task %d: %s %s starts as the %s, %d rows",
                task.task_id,
                component.name,
                component.version,
                run.role,
                len(run.rows),
            )
            try:
                output, units = component.run(run)
            except Exception as failure:
                if not run.delivered:
                    raise
                # the requester had its output and this provider's part did not come, or came
                # malformed: it anchors as told nothing, paid for what it answered, and never
                # fails the task
                logger.warning("task %d: delivered, then %r: told nothing", task.task_id, failure)
                output, units = None, run.withheld.units
            seen = run.channels  # a provider's views: their transcripts cover the held messages
            outcome = Outcome(
                output,
                combined_transcript(seen),
                units,
                time.perf_counter() - started,
                usage.close(seen.values()),
            )
            if held is not None:
                if not run.delivered:  # else held to its price when it recorded the delivery
                    self._check_before_output(task, terms, units)
                self._anchor(task, outcome)
                held.release()
            for org, channel in channels.items():
                if org in run.dropped:
                    channel.abandon()
                else:
                    channel.finish()  # the peers have every frame we sent
            if held is None:
                self._anchor(task, outcome)
        self._audit_usage(task, outcome.usage)  # after the last messages left: they wait for none

    def _anchor_told_nothing(self, task: Task) -> None:
        """Anchor, without an output or a transcript, a task this provider delivered before it
        stopped; never fail it: the requester may hold its output (a missed deadline lets the
        task expire instead)."""
        logger.warning("task %d: delivered before a restart: told nothing", task.task_id)
        nothing = Outcome(None, bytes(32), 0, 0.0, Usage(0.0, 0, 0, 0, False))
        try:
            self._anchor(task, nothing)
        except ChainError as exc:
            logger.warning("task %d not anchored: %s", task.task_id, exc)

    def _delivered(self, task_id: int) -> Task | None:
        """The open task ``task_id`` if this organisation recorded a delivery for it."""
        tasks = self.node.ledger.tasks
        try:
            task = tasks.get_task(task_id)
            seats = tasks.deliveries_of(task_id)
        except ChainError:  # e.g. a task the chain no longer has
            return None
        if task.status not in ACTIVE or self.node.org_id not in task.participants:
            return None
        return task if seats >> task.participants.index(self.node.org_id) & 1 else None

    def _check_active(self, task: Task) -> None:
        """Refuse a task one of whose participants the consortium no longer counts as active
        (suspended or expelled since the task was submitted, or its approval given)."""
        orgs = self.node.ledger.orgs
        inactive = [org for org in task.participants if not orgs.is_active(org)]
        if inactive:
            raise TaskRefused(
                FailureReason.GRANT_INVALID,
                f"organisation(s) {inactive} are no longer active in the consortium",
            )

    def _check_before_output(self, task: Task, terms: GrantTerms | None, units: int) -> None:
        """Refuse, as a provider about to give the requester its output, a task whose
        participants are no longer all active, or a fee below the terms' price for ``units``,
        against the charges the ledger settles the task by (:mod:`privledger.node.pricing`)."""
        self._check_active(task)
        if terms is None:
            return
        charges = self.node.ledger.tasks.charges_of(task.task_id)
        problem = price_violation(charges, terms, org=self.node.org_id, fee=task.fee, units=units)
        if problem is not None:
            raise TaskRefused(FailureReason.TERMS_VIOLATION, str(problem))

    def _record_delivery(self, task: Task, terms: GrantTerms | None, units: int) -> float:
        """Record on the ledger, as a provider whose next messages give the requester its output
        before it can anchor, that it delivers: the requester can then no longer fail the task
        (:mod:`privledger.node.release`). It holds the fee to the terms' price first, for the
        ``units`` it anchors if the requester then withholds its part. Returns by when
        (monotonic) the protocol must stop waiting so that this node can still anchor before
        the deadline."""
        self._check_before_output(task, terms, units)
        left = task.deadline - self.node.ledger.client.latest_timestamp()  # chain time
        if left < 2 * ANCHOR_MARGIN_S:
            raise TaskRefused(
                FailureReason.POLICY_VIOLATION,
                f"{left} s to the task's deadline is too little to deliver the output and anchor",
            )
        try:
            self.node.ledger.tasks.record_delivery(task.task_id)
        except ChainRevert as exc:  # e.g. the requester failed the task meanwhile
            raise TaskRefused(
                FailureReason.PROTOCOL_ERROR, f"the delivery was not recorded: {exc}"
            ) from exc
        logger.info("task %d: delivery recorded, %d s to the deadline", task.task_id, left)
        return time.monotonic() + left - ANCHOR_MARGIN_S

    def _audit_usage(self, task: Task, usage: Usage) -> None:
        """The figures of this node's part in its audit log, anchored with the log's next batch:
        recorded once, they can no longer be changed unseen."""
        record(
            self.node,
            action="resource_usage",
            actor="worker",
            subject=f"task {task.task_id}",
            outcome=usage.audit_outcome(),
            task_id=task.task_id,
        )

    def _input(
        self, task_id: int, mine: SpecInput, form: InputForm
    ) -> tuple[list[tuple[bytes, ...]], Path | None, Any]:
        """This node's input in the runner's form: rows (key column, features, value column),
        the file (a protocol that streams it) or the key column as an Arrow array; none of them
        for a model."""
        with Session(self.node.engine) as session:
            dataset = session.get(LocalDataset, mine.dataset.lower())
            model = session.get(LocalModel, mine.dataset.lower())
        if model is not None:
            return [], None, None  # the prediction runner loads it
        if dataset is None:
            raise TaskRefused(
                FailureReason.PROTOCOL_ERROR, f"dataset {mine.dataset} is not on this node"
            )
        columns_read = ", ".join(
            filter(None, [mine.column, *(mine.features or ()), mine.value_column])
        )
        record(
            self.node,
            action="data_access",
            actor="worker",
            subject=dataset.dataset_id,
            outcome=f"read {columns_read}",
            task_id=task_id,
        )
        columns = [mine.column, *(mine.features or ())]
        columns += [mine.value_column] if mine.value_column else []
        path = Path(dataset.path)
        if form == "file":
            return [], path, None
        try:
            if form == "column":
                return [], None, read_key_column(path, mine.column)
            return read_rows(path, columns), None, None
        except DatasetFileError as exc:
            raise TaskRefused(FailureReason.PROTOCOL_ERROR, str(exc)) from exc

    def _min_release(self, spec: TaskSpec, terms: GrantTerms | None) -> int:
        """The fewest rows a result may cover under the policies of the classification levels
        of every input another organisation provides (level 1 if the requester provides all)
        and the terms of the grant on this organisation's input."""
        data = self.node.ledger.data
        levels = [
            data.get_dataset(bytes.fromhex(item.dataset[2:])).level
            for item in spec.inputs
            if item.org != spec.requester
        ]
        by_policy = self.node.policies.min_result(levels or [1])
        return max(by_policy, terms.min_result) if terms is not None else by_policy

    def _channel(self, task: Task, peer_org: int) -> SecureChannel:
        peer = self.node.ledger.orgs.get_org(peer_org)
        wire = HttpWire(
            peer.endpoint,
            self.node.http,
            self.node.mailbox,
            task_id=task.task_id,
            our_org=self.node.org_id,
            peer_org=peer_org,
        )
        return open_channel(
            task_id=task.task_id,
            our_org=self.node.org_id,
            peer_org=peer_org,
            our_key=self.node.node_key,
            peer_public_key=peer.node_key,
            wire=wire,
        )

    def _meet(self, channels: Mapping[int, SecureChannel]) -> None:
        """Greet every peer, then wait until each has greeted back: the protocol starts (and its
        time is counted) once every party has its input loaded and its channels open."""
        for channel in channels.values():
            channel.greet()
        for channel in channels.values():
            channel.wait_for_peer(self.node.settings.channel_timeout_s)

    def _deal(self, task: Task, spec: TaskSpec) -> Outcome:
        """The dealer of a statistics task: correlated randomness to every data party, no data.
        Only while this organisation publishes its dealer service (its consent), for at most
        :data:`DEALER_BUDGET_S`, and on all but one of the worker's threads, so that stalled
        parties cannot hold the worker: a dealer at capacity refuses at once."""
        if not self.node.ledger.orgs.is_dealer(self.node.org_id):
            raise TaskRefused(
                FailureReason.POLICY_VIOLATION, "this organisation publishes no dealer service"
            )
        if not self._dealing.acquire(blocking=False):
            raise TaskRefused(
                FailureReason.PEER_UNREACHABLE, "the dealer serves as many tasks as it can"
            )
        try:
            return self._serve_as_dealer(task, spec)
        finally:
            self._dealing.release()

    def _serve_as_dealer(self, task: Task, spec: TaskSpec) -> Outcome:
        owners = [item.org for item in spec.inputs]
        channels = {org: self._channel(task, org) for org in owners}
        with _closing(channels), UsageWindow() as usage:
            self._meet(channels)
            started = time.perf_counter()
            dealer = Dealer({owners.index(org): channel for org, channel in channels.items()})
            dealer.serve()
            # serve until every party closes its channel, the deadline or the budget
            left = task.deadline - self.node.ledger.client.latest_timestamp()  # chain time
            dealer.join(min(max(1.0, left), DEALER_BUDGET_S))
            for channel in channels.values():
                channel.finish()
            transcript = combined_transcript(channels)
            spent = usage.close(channels.values())
        return Outcome(None, transcript, 0, time.perf_counter() - started, spent)

    def _anchor(self, task: Task, outcome: Outcome) -> None:
        salt = secrets.token_bytes(32)
        path, output_sha256 = results.keep(
            outcome.output, self.node.settings.results_dir, task.task_id
        )
        digest = digest_of_hash(task.task_id, self.node.org_id, salt, output_sha256)
        self.node.ledger.tasks.anchor_result(
            task.task_id, digest, outcome.transcript_hash, min(outcome.matched, MAX_UNITS)
        )
        self._record(
            task.task_id,
            task.spec_hash,
            state="anchored",
            salt="0x" + salt.hex(),
            result_path=None if path is None else str(path),
            result_size=outcome.matched,
            result_digest="0x" + digest.hex(),
            transcript_hash="0x" + outcome.transcript_hash.hex(),
            protocol_seconds=outcome.seconds,
            bytes_sent=outcome.usage.bytes_sent,
            bytes_received=outcome.usage.bytes_received,
            cpu_seconds=outcome.usage.cpu_seconds,
            peak_rss_bytes=outcome.usage.peak_rss_bytes,
            usage_shared=outcome.usage.shared,
        )
        self._metrics.ran(
            task.kind, task.protocol, outcome.seconds, outcome.usage.bytes_sent, outcome="anchored"
        )
        self._absences.watch(task.task_id)

    # --- settlement -------------------------------------------------------------------------
    def _settle(self, task_id: int) -> None:
        """Settle a completed task this organisation requested or provided data to: the ledger
        pays the providers by their anchored usage, whoever calls it, so a provider need not
        wait for the requester (the first settlement counts, a second is refused)."""
        ledger = self.node.ledger
        task = ledger.tasks.get_task(task_id)
        with Session(self.node.engine) as session:
            row = session.get(LocalTask, task_id)
        if (
            row is None
            or row.spec_json is None
            or not _holds(row, task.spec_hash)
            or task.status is not TaskStatus.COMPLETED
        ):
            self._record(task_id, task.spec_hash, state="done")
            return
        spec = parse_canonical(row.spec_json.encode())
        providing = any(item.org == self.node.org_id != spec.requester for item in spec.inputs)
        if spec.requester != self.node.org_id and not providing:
            self._record(task_id, task.spec_hash, state="done")
            return
        record = settlement_record(ledger, spec, task_id)
        try:
            ledger.tasks.settle_task(task_id, record.hash)
        except ChainError as exc:
            if ledger.tasks.get_task(task_id).status is not TaskStatus.SETTLED:
                raise
            logger.info("task %d was settled by another participant: %s", task_id, exc)
            self._record(task_id, task.spec_hash, state="settled")
            return
        self.node.settings.results_dir.mkdir(parents=True, exist_ok=True)
        (self.node.settings.results_dir / f"task-{task_id}-provenance.json").write_bytes(
            record.canonical_json()
        )
        self._record(task_id, task.spec_hash, state="settled")

    # --- bookkeeping ------------------------------------------------------------------------
    def _fail(self, task_id: int, reason: FailureReason, message: str) -> None:
        logger.warning("task %d failed: %s (%s)", task_id, message, reason.name)
        try:
            self.node.ledger.tasks.fail_task(task_id, int(reason))
        except ChainRevert as exc:
            if exc.error == "TaskLedgerDelivered":  # the requester may hold a provider's output
                logger.warning("task %d not failed on chain: it settles at its deadline", task_id)
                self._absences.close_at_deadline(task_id)
            else:
                logger.info("task %d already closed on chain: %s", task_id, exc)
        except ChainError as exc:
            # another participant may have recorded its failure in the same block
            if self.node.ledger.tasks.get_task(task_id).status is not TaskStatus.FAILED:
                logger.error("could not record the failure of task %d: %s", task_id, exc)
        task = self.node.ledger.tasks.get_task(task_id)
        self._record(task_id, task.spec_hash, state="failed", failure=f"{reason.name}: {message}")
        self._metrics.failed(task.kind, reason.name)

    def _record(self, task_id: int, spec_hash: bytes, **fields: object) -> None:
        with Session(self.node.engine) as session:
            row = session.get(LocalTask, task_id)
            if row is not None and not _holds(row, spec_hash):
                # a task of this id that the chain no longer has (reorganised away)
                session.delete(row)
                session.flush()
                row = None
                self.node.mailbox.reopen({task_id})
            if row is None:
                row = LocalTask(task_id=task_id, spec_hash="0x" + spec_hash.hex())
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = datetime.now(UTC)
            session.add(row)
            session.commit()
