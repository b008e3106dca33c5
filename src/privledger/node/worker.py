"""The worker: follows the ledger, runs the tasks this organisation takes part in, anchors results,
settles the tasks it requested.

It fails closed. Before touching data it re-reads the task from the chain, checks the fetched spec
against the spec hash on chain, and checks every foreign input's authorisation as it stands now (a
grant revoked or expired since submission stops the task). Anything that goes wrong is recorded on
chain as a failure with a reason, which refunds the requester; a result is anchored only once the
protocol finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from Crypto.Hash import keccak
from eth_abi.abi import encode
from sqlmodel import Session, select

from privledger.evm.contracts import ApprovalStatus, FailureReason, Task, TaskStatus
from privledger.evm.errors import ChainError, ChainRevert
from privledger.metering.provenance import Contribution, ProvenanceRecord, provenance
from privledger.node.context import NodeContext
from privledger.node.datasets import DatasetFileError, read_rows
from privledger.node.policy import min_group_size
from privledger.node.services import anchor_pending_calls, log_call
from privledger.node.spec import TASK_KINDS, TaskSpec
from privledger.node.transport import HttpWire, PeerUnreachable, SecureChannel, open_channel
from privledger.protocols.channel import Channel, ChannelError, ChannelTimeout
from privledger.protocols.fl.contribution import fee_shares, mean_log_likelihood, shapley_values
from privledger.protocols.fl.vertical import (
    VerticalConfig,
    predict_vertical,
    predict_vertical_plaintext,
    train_vertical_plaintext,
    train_vertical_ss,
)
from privledger.protocols.mpc.lending import LoanBook, multi_lending_check
from privledger.protocols.mpc.sharing import Dealer, Party
from privledger.protocols.mpc.stats import joint_stats
from privledger.protocols.pir.keyword import KeywordTable, run_holder, run_querier
from privledger.protocols.psi import ecdh, kkrt, multiparty
from privledger.store.events import events_named
from privledger.store.models import LocalDataset, LocalTask, PsiService

logger = logging.getLogger(__name__)

PSI_PROTOCOLS = {"ecdh": ecdh.run_psi, "kkrt": kkrt.run_psi}
MAX_PIR_VALUE = 1_000
VALIDATION_BYTE = 51  # ~20% of aligned rows are held out to measure contributions
FINAL_STATES = {"anchored", "failed", "settled", "done"}
ACTIVE = {TaskStatus.AUTHORISED, TaskStatus.RUNNING}


class TaskRefused(Exception):
    """The worker will not run this task; ``reason`` is the code recorded on chain."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    output: list[str] | None  # None: this party learns no output
    transcript_hash: bytes
    matched: int
    seconds: float
    bytes_sent: int


def result_digest(task_id: int, org_id: int, salt: bytes, output: bytes) -> bytes:
    """keccak256(abi.encode(taskId, participant, salt, sha256(output))) — what a worker anchors."""
    encoded = encode(
        ["uint256", "uint256", "bytes32", "bytes32"],
        [task_id, org_id, salt, hashlib.sha256(output).digest()],
    )
    return keccak.new(digest_bits=256, data=encoded).digest()


def _padded_pairs(rows: list[tuple[bytes, ...]]) -> list[tuple[bytes, bytes]]:
    """PIR values of one length: a 2-byte length, the value, zero padding."""
    width = max((len(value) for _, value in rows), default=0)
    if width > MAX_PIR_VALUE:
        raise TaskRefused(
            FailureReason.POLICY_VIOLATION, f"values longer than {MAX_PIR_VALUE} bytes"
        )
    pairs = {}
    for key, value in rows:
        pairs[key] = len(value).to_bytes(2, "big") + value.ljust(width, b"\0")
    return list(pairs.items())


def _unpad(value: bytes) -> bytes:
    return value[2 : 2 + int.from_bytes(value[:2], "big")]


def validation_row(key: bytes) -> bool:
    """Whether an aligned row is held out for validation (the same answer on every node)."""
    return hashlib.sha256(b"privledger/fl/validation/" + key).digest()[0] < VALIDATION_BYTE


def two_party_shapley(
    standard: npt.NDArray[np.float64],
    labels: npt.NDArray[np.float64],
    held_out: npt.NDArray[np.bool_],
    joint: npt.NDArray[np.float64],
    *,
    requester: int,
    parties: list[int],
) -> dict[str, float]:
    """Shapley values of the two parties by validation log-likelihood (label holder = requester).

    v(none) = v(partner alone) = the label prior (the partner has no labels); v(requester) = its
    own columns retrained in plaintext on its side; v(both) = the jointly trained model.
    """
    other = next(org for org in parties if org != requester)
    train, valid = ~held_out, held_out
    prior = float(np.clip(labels[train].mean(), 1e-6, 1 - 1e-6))
    v_none = mean_log_likelihood(np.full(int(valid.sum()), prior), labels[valid])
    own = train_vertical_plaintext([standard[train]], labels[train], config=VerticalConfig())
    v_own = mean_log_likelihood(predict_vertical_plaintext([standard[valid]], own), labels[valid])
    v_both = mean_log_likelihood(joint, labels[valid])
    values = shapley_values(
        [requester, other],
        lambda s: v_both if len(s) == 2 else v_own if requester in s else v_none,
    )
    return {str(org): value for org, value in values.items()}


def combined_transcript(channels: Mapping[int, Channel]) -> bytes:
    """One peer: that channel's transcript (equal on both ends). Several: sha256 over each
    channel's transcript in peer-org order (each participant anchors its own view)."""
    if len(channels) == 1:
        return next(iter(channels.values())).transcript_hash
    digest = hashlib.sha256()
    for org in sorted(channels):
        digest.update(org.to_bytes(8, "big") + channels[org].transcript_hash)
    return digest.digest()


def output_bytes(items: list[str] | None) -> bytes:
    """The canonical bytes of an output: a sorted JSON list, or empty for no output."""
    if items is None:
        return b""
    return json.dumps(sorted(items), ensure_ascii=False, separators=(",", ":")).encode()


class Worker:
    def __init__(self, node: NodeContext, *, max_parallel: int = 4) -> None:
        self.node = node
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="task")
        self._busy: set[int] = set()
        self._ignored: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- loop -------------------------------------------------------------------------------
    def start(self) -> None:
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
        """Index new blocks, start authorised tasks, settle completed ones."""
        self.node.indexer.sync()
        with Session(self.node.engine) as session:
            authorised = events_named(session, ["TaskAuthorised"])
            completed = events_named(session, ["TaskCompleted"])
            local = {row.task_id: row for row in session.exec(select(LocalTask))}
        for event in authorised:
            task_id = int(event.args["taskId"])
            row = local.get(task_id)
            if row is None or row.state not in FINAL_STATES:
                self._submit(task_id, self._run)
        for event in completed:
            task_id = int(event.args["taskId"])
            row = local.get(task_id)
            if row is not None and row.state == "anchored" and row.spec_json is not None:
                self._submit(task_id, self._settle)
        anchor_pending_calls(self.node)

    def _submit(self, task_id: int, job: Callable[[int], None]) -> None:
        with self._lock:
            if task_id in self._busy or task_id in self._ignored:
                return
            self._busy.add(task_id)

        def wrapped() -> None:
            try:
                job(task_id)
            finally:
                with self._lock:
                    self._busy.discard(task_id)

        self._pool.submit(wrapped)

    def _recover(self) -> None:
        """A task that was mid-protocol when the node stopped cannot resume: fail it cleanly."""
        with Session(self.node.engine) as session:
            stale = session.exec(select(LocalTask).where(LocalTask.state == "running")).all()
        for row in stale:
            self._fail(row.task_id, FailureReason.PROTOCOL_ERROR, "node restarted mid-protocol")

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
        self._record(task_id, task.spec_hash, state="running")
        try:
            spec = self._verified_spec(task)
            self._check_authorisation(task, spec)
            service = self._called_service(task, spec)
            if spec.requester == self.node.org_id:
                self._start_on_chain(task_id)
            outcome = self._execute(task, spec)
            self._anchor(task, outcome)
            if service is not None:
                self._log_call(task, spec, "ran")
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

    def _verified_spec(self, task: Task) -> TaskSpec:
        raw = self._spec_bytes(task)
        if keccak.new(digest_bits=256, data=raw).digest() != task.spec_hash:
            raise TaskRefused(
                FailureReason.SPEC_MISMATCH, "the spec does not match its hash on chain"
            )
        try:
            spec = TaskSpec.parse_canonical(raw)
        except ValueError as exc:
            raise TaskRefused(FailureReason.SPEC_MISMATCH, f"unreadable spec: {exc}") from exc
        inputs = tuple(bytes.fromhex(item.dataset[2:]) for item in spec.inputs)
        consistent = (
            spec.requester == task.requester_org
            and sorted(spec.participants) == sorted(task.participants)
            and inputs == task.inputs
            and task.kind == TASK_KINDS[spec.kind]
        )
        if not consistent:
            raise TaskRefused(
                FailureReason.SPEC_MISMATCH, "the spec disagrees with the task on chain"
            )
        self._record(task.task_id, task.spec_hash, spec_json=raw.decode())
        return spec

    def _spec_bytes(self, task: Task) -> bytes:
        with Session(self.node.engine) as session:
            row = session.get(LocalTask, task.task_id)
            if row is not None and row.spec_json is not None:
                return row.spec_json.encode()
        endpoint = self.node.ledger.orgs.get_org(task.requester_org).endpoint
        url = f"{endpoint}/api/v1/peer/tasks/{task.task_id}/spec"
        try:
            response = self.node.http.get(url)
        except Exception as exc:
            raise TaskRefused(
                FailureReason.PEER_UNREACHABLE, f"cannot fetch the spec: {exc}"
            ) from exc
        if response.status_code != 200:
            raise TaskRefused(
                FailureReason.SPEC_MISMATCH, f"spec fetch answered {response.status_code}"
            )
        return response.content

    def _check_authorisation(self, task: Task, spec: TaskSpec) -> None:
        """Every foreign input must be covered, now, by the grant consumed at submission or by an
        owner's approval."""
        ledger = self.node.ledger
        now = int(ledger.client.w3.eth.get_block("latest")["timestamp"])
        with Session(self.node.engine) as session:
            submitted = events_named(session, ["TaskSubmitted"], task_id=task.task_id)
            consumed = (
                events_named(session, ["GrantConsumed"], tx_hash=submitted[0].tx_hash)
                if submitted
                else []
            )
        grants = [ledger.grants.get_grant(bytes.fromhex(e.args["grantId"][2:])) for e in consumed]
        for item in spec.inputs:
            if item.org == spec.requester:
                continue
            dataset = bytes.fromhex(item.dataset[2:])
            grant = next((g for g in grants if g.dataset_id == dataset), None)
            if grant is not None:
                if grant.revoked or now >= grant.expiry:
                    raise TaskRefused(
                        FailureReason.GRANT_INVALID,
                        f"the grant on {item.dataset} was revoked or expired",
                    )
            elif ledger.grants.approval_of(task.task_id, dataset) is not ApprovalStatus.APPROVED:
                raise TaskRefused(
                    FailureReason.GRANT_INVALID, f"no grant or approval covers {item.dataset}"
                )
            if ledger.data.get_dataset(dataset).retired:
                raise TaskRefused(
                    FailureReason.GRANT_INVALID, f"dataset {item.dataset} was retired"
                )

    def _called_service(self, task: Task, spec: TaskSpec) -> PsiService | None:
        """The service of ours this task calls, checked against its published terms."""
        if spec.service is None or spec.requester == self.node.org_id:
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
            self._log_call(task, spec, f"refused: {problem}")
            raise TaskRefused(FailureReason.POLICY_VIOLATION, problem)
        return service

    def _log_call(self, task: Task, spec: TaskSpec, outcome: str) -> None:
        log_call(
            self.node,
            service=spec.service or "",
            task_id=task.task_id,
            caller_org=spec.requester,
            spec_hash="0x" + task.spec_hash.hex(),
            outcome=outcome,
        )

    def _start_on_chain(self, task_id: int) -> None:
        try:
            self.node.ledger.tasks.start_task(task_id)
        except ChainRevert as exc:
            logger.info("task %d not started on chain: %s", task_id, exc)

    def _execute(self, task: Task, spec: TaskSpec) -> Outcome:
        if spec.dealer == self.node.org_id:
            return self._deal(task, spec)
        mine = next(item for item in spec.inputs if item.org == self.node.org_id)
        with Session(self.node.engine) as session:
            dataset = session.get(LocalDataset, mine.dataset.lower())
        if dataset is None:
            raise TaskRefused(
                FailureReason.PROTOCOL_ERROR, f"dataset {mine.dataset} is not on this node"
            )
        columns = [mine.column, *(mine.features or ())]
        columns += [mine.value_column] if mine.value_column else []
        try:
            rows = read_rows(Path(dataset.path), columns)
        except DatasetFileError as exc:
            raise TaskRefused(FailureReason.PROTOCOL_ERROR, str(exc)) from exc
        channels = {
            org: self._channel(task, org) for org in spec.participants if org != self.node.org_id
        }
        started = time.perf_counter()
        try:
            if spec.kind == "fl":
                output, units = self._vertical(channels, spec, rows)
            elif spec.protocol in ("lending-total", "lending-exceeds"):
                output, units = self._lending(channels, spec, rows)
            elif spec.kind == "stats":
                output, units = self._stats(channels, spec, [row[0] for row in rows])
            elif spec.protocol in ("intersection3", "union3"):
                output, units = self._three_party(channels, spec, [row[0] for row in rows])
            elif spec.kind == "psi":
                (channel,) = channels.values()
                output, units = self._psi(channel, spec, [row[0] for row in rows])
            else:
                (channel,) = channels.values()
                output, units = self._pir(channel, spec, rows)
            transcript = combined_transcript(channels)
            sent = sum(channel.bytes_sent for channel in channels.values())
        finally:
            for channel in channels.values():
                channel.close()
        return Outcome(output, transcript, units, time.perf_counter() - started, sent)

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

    def _psi(
        self, channel: SecureChannel, spec: TaskSpec, items: list[bytes]
    ) -> tuple[list[str] | None, int]:
        """PSI: the output is the intersection; matched rows are what providers are paid for."""
        role: Literal["requester", "provider"] = (
            "requester" if spec.requester == self.node.org_id else "provider"
        )
        timeout = self.node.settings.channel_timeout_s
        if spec.protocol == "membership":
            return self._membership(channel, role, items, timeout)
        if spec.protocol == "difference":
            difference = multiparty.run_difference(channel, items, role=role, timeout=timeout)
            if not difference.learned_output:
                return None, 0
            # a provider is paid for the rows it matched: those the requester could drop
            matched = len(set(items)) - len(difference.difference)
            return [item.decode() for item in difference.difference], matched
        result = PSI_PROTOCOLS[spec.protocol](
            channel,
            items,
            role=role,
            reveal_to_provider=spec.output == "both",
            timeout=self.node.settings.channel_timeout_s,
        )
        output = [item.decode() for item in result.intersection] if result.learned_output else None
        return output, len(result.intersection)

    @staticmethod
    def _membership(
        channel: SecureChannel, role: str, items: list[bytes], timeout: float
    ) -> tuple[list[str] | None, int]:
        """Anonymous membership query: the requester's one key against the holder's set."""
        if role != "requester":
            multiparty.answer_membership(channel, items, timeout=timeout)
            return None, 0
        keys = set(items)
        if len(keys) != 1:
            raise TaskRefused(
                FailureReason.POLICY_VIOLATION, "a membership query dataset holds exactly one key"
            )
        (key,) = keys
        answer = multiparty.query_membership(channel, key, timeout=timeout)
        return [json.dumps([key.decode(), answer.member])], 1

    def _three_party(
        self, channels: dict[int, SecureChannel], spec: TaskSpec, items: list[bytes]
    ) -> tuple[list[str] | None, int]:
        """Three-party intersection or union; the requester (index 0) receives the output."""
        order = spec.participants  # the requester first: index 0 leads / receives
        index = order.index(self.node.org_id)
        peers = {order.index(org): channel for org, channel in channels.items()}
        timeout = self.node.settings.channel_timeout_s
        if spec.protocol == "intersection3":
            result = multiparty.run_intersection(index, peers, items, leader=0, timeout=timeout)
        else:
            result = multiparty.run_union(index, peers, items, receiver=0, timeout=timeout)
        if not result.learned_output:
            return None, 0
        return [item.decode() for item in result.items], len(result.items)

    def _deal(self, task: Task, spec: TaskSpec) -> Outcome:
        """The dealer of a statistics task: correlated randomness to every data party, no data."""
        owners = [item.org for item in spec.inputs]
        channels = {org: self._channel(task, org) for org in owners}
        started = time.perf_counter()
        try:
            dealer = Dealer({owners.index(org): channel for org, channel in channels.items()})
            dealer.serve()
            # serve until every party closes its channel (or the task's deadline passes)
            dealer.join(max(1.0, task.deadline - time.time()))
            transcript = combined_transcript(channels)
            sent = sum(channel.bytes_sent for channel in channels.values())
        finally:
            for channel in channels.values():
                channel.close()
        return Outcome(None, transcript, 0, time.perf_counter() - started, sent)

    def _stats(
        self, channels: dict[int, SecureChannel], spec: TaskSpec, column: list[bytes]
    ) -> tuple[list[str] | None, int]:
        """Joint count, sum, mean and variance; released to the requester only when the group is
        at least the classification policy's minimum size."""
        try:
            values = np.array([float(value) for value in column], dtype=np.float64)
        except ValueError as exc:
            raise TaskRefused(
                FailureReason.POLICY_VIOLATION, f"a non-numeric value: {exc}"
            ) from exc
        owners = [item.org for item in spec.inputs]
        levels = [
            self.node.ledger.data.get_dataset(bytes.fromhex(item.dataset[2:])).level
            for item in spec.inputs
        ]
        party = self._party(channels, spec)
        result = joint_stats(
            party,
            values,
            requester=owners.index(spec.requester),
            min_group_size=min_group_size(levels),
            frac_bits=spec.frac_bits,
            histogram_edges=spec.histogram_edges,
        )
        if result is None:
            return None, 0
        return [json.dumps(dataclasses.asdict(result), sort_keys=True)], result.count or 0

    def _party(self, channels: dict[int, SecureChannel], spec: TaskSpec) -> Party:
        """This node as an MPC party: data parties indexed in input order, plus the dealer."""
        owners = [item.org for item in spec.inputs]
        if spec.dealer is None:
            raise TaskRefused(FailureReason.SPEC_MISMATCH, "a statistics task without a dealer")
        return Party(
            owners.index(self.node.org_id),
            {owners.index(org): ch for org, ch in channels.items() if org != spec.dealer},
            dealer=channels[spec.dealer],
            timeout=self.node.settings.channel_timeout_s,
        )

    def _lending(
        self, channels: dict[int, SecureChannel], spec: TaskSpec, rows: list[tuple[bytes, ...]]
    ) -> tuple[list[str] | None, int]:
        """Multi-lending check: the requesting bank learns one customer's total across the other
        banks, or only whether it exceeds its limit; the others learn neither customer nor total."""
        mode: Literal["total", "exceeds"] = (
            "total" if spec.protocol == "lending-total" else "exceeds"
        )
        party = self._party(channels, spec)
        requester = [item.org for item in spec.inputs].index(spec.requester)
        try:
            if spec.requester == self.node.org_id:
                if len(rows) != 1:
                    raise ValueError("the query dataset holds exactly one customer row")
                customer = rows[0][0].decode()
                limit = int(rows[0][1]) if mode == "exceeds" and len(rows[0]) > 1 else None
                result = multi_lending_check(
                    party, requester=requester, mode=mode, customer_id=customer, limit=limit
                )
            else:
                book = LoanBook.from_records((key.decode(), int(value)) for key, value in rows)
                multi_lending_check(party, requester=requester, mode=mode, book=book)
                return None, 0
        except ValueError as exc:
            raise TaskRefused(FailureReason.POLICY_VIOLATION, str(exc)) from exc
        if result is None:
            return None, 0
        answer = {"mode": mode, "banks": result.banks, "total": result.total}
        if mode == "exceeds":
            answer = {"mode": mode, "banks": result.banks, "exceeds": result.exceeds}
        return [json.dumps(answer, sort_keys=True)], 1

    def _vertical(
        self, channels: dict[int, SecureChannel], spec: TaskSpec, rows: list[tuple[bytes, ...]]
    ) -> tuple[list[str] | None, int]:
        """Vertical logistic regression: align the two parties' rows by PSI inside the task (both
        learn the common ids, as vertical FL needs), then train by secret sharing; each party
        keeps its own model part (weights of its columns, the intercept at the label holder)."""
        mine = next(item for item in spec.inputs if item.org == self.node.org_id)
        peer_org = next(item.org for item in spec.inputs if item.org != self.node.org_id)
        requester = spec.requester == self.node.org_id
        ids = [row[0] for row in rows]
        aligned = kkrt.run_psi(
            channels[peer_org],
            ids,
            role="requester" if requester else "provider",
            reveal_to_provider=True,
            timeout=self.node.settings.channel_timeout_s,
        )
        position = {key: index for index, key in reversed(list(enumerate(ids)))}
        order = [position[key] for key in aligned.intersection]
        width = len(mine.features or ())
        try:
            features = np.array(
                [[float(value) for value in rows[i][1 : 1 + width]] for i in order], dtype=float
            ).reshape(len(order), width)
            labels = np.array([float(rows[i][-1]) for i in order]) if requester else None
        except ValueError as exc:
            raise TaskRefused(FailureReason.POLICY_VIOLATION, f"non-numeric value: {exc}") from exc
        if len(order) < 2:
            raise TaskRefused(FailureReason.POLICY_VIOLATION, "fewer than 2 aligned rows")
        # each party standardises its own columns; the means and scales travel with its model
        mean, scale = features.mean(axis=0), features.std(axis=0)
        scale[scale == 0] = 1.0
        standard = (features - mean) / scale
        # a validation fifth, chosen from the common ids alike on both sides, measures contributions
        held_out = np.array([validation_row(key) for key in aligned.intersection], dtype=bool)
        owners = [item.org for item in spec.inputs]
        party = self._party(channels, spec)
        label_holder = owners.index(spec.requester)
        model = train_vertical_ss(
            party,
            standard[~held_out],
            None if labels is None else labels[~held_out],
            label_holder=label_holder,
            config=VerticalConfig(),
        )
        joint = predict_vertical(party, standard[held_out], model, requester=label_holder)
        part: dict[str, object] = {
            "aligned": len(order),
            "features": list(mine.features or ()),
            "mean": mean.tolist(),
            "scale": scale.tolist(),
            "weights": model.weights.tolist(),
            "intercept": model.intercept,
        }
        if joint is not None and labels is not None:
            part["contributions"] = two_party_shapley(
                standard, labels, held_out, joint, requester=spec.requester, parties=owners
            )
        return [json.dumps(part, sort_keys=True)], len(order)

    def _pir(
        self, channel: SecureChannel, spec: TaskSpec, rows: list[tuple[bytes, ...]]
    ) -> tuple[list[str] | None, int]:
        """Keyword PIR: the querier's output is ``[key, value or null]`` per key it asked for;
        the holder is paid per key asked (it cannot know which were found)."""
        mode: Literal["pir", "bucket"] = "pir" if spec.protocol == "simplepir" else "bucket"
        timeout = self.node.settings.channel_timeout_s
        if spec.requester != self.node.org_id:
            table = KeywordTable.build(dict(_padded_pairs(rows)), mode=mode)
            view = run_holder(channel, table, timeout=timeout)
            return None, view.batch
        keys = sorted({row[0] for row in rows})
        result = run_querier(channel, keys, mode=mode, timeout=timeout)
        output = [
            json.dumps([key.decode(), None if value is None else _unpad(value).decode()])
            for key, value in zip(keys, result.values, strict=True)
        ]
        return output, len(keys)

    def _anchor(self, task: Task, outcome: Outcome) -> None:
        salt = secrets.token_bytes(32)
        payload = output_bytes(outcome.output)
        digest = result_digest(task.task_id, self.node.org_id, salt, payload)
        result_path = None
        if outcome.output is not None:
            self.node.settings.results_dir.mkdir(parents=True, exist_ok=True)
            path = self.node.settings.results_dir / f"task-{task.task_id}.json"
            path.write_bytes(payload)
            result_path = str(path)
        self.node.ledger.tasks.anchor_result(task.task_id, digest, outcome.transcript_hash)
        self._record(
            task.task_id,
            task.spec_hash,
            state="anchored",
            salt="0x" + salt.hex(),
            result_path=result_path,
            result_size=outcome.matched,
            result_digest="0x" + digest.hex(),
            transcript_hash="0x" + outcome.transcript_hash.hex(),
            protocol_seconds=outcome.seconds,
            bytes_sent=outcome.bytes_sent,
        )

    # --- settlement -------------------------------------------------------------------------
    def _settle(self, task_id: int) -> None:
        ledger = self.node.ledger
        task = ledger.tasks.get_task(task_id)
        with Session(self.node.engine) as session:
            row = session.get(LocalTask, task_id)
        if row is None or row.spec_json is None or task.status is not TaskStatus.COMPLETED:
            self._record(task_id, task.spec_hash, state="done")
            return
        spec = TaskSpec.parse_canonical(row.spec_json.encode())
        if spec.requester != self.node.org_id:
            self._record(task_id, task.spec_hash, state="done")
            return
        record = (
            self._contribution_record(task_id, spec, row)
            if spec.kind == "fl"
            else self._usage_record(task_id, spec, row)
        )
        ledger.tasks.settle_task(task_id, list(record.payees), list(record.bps), record.hash)
        self.node.settings.results_dir.mkdir(parents=True, exist_ok=True)
        (self.node.settings.results_dir / f"task-{task_id}-provenance.json").write_bytes(
            record.canonical_json()
        )
        self._record(task_id, task.spec_hash, state="settled")

    def _contribution_record(
        self, task_id: int, spec: TaskSpec, row: LocalTask
    ) -> ProvenanceRecord:
        """Federated learning: the fee follows each party's Shapley contribution to the model."""
        if row.result_path is None:
            raise RuntimeError(f"task {task_id} has no local result to settle from")
        (part,) = json.loads(Path(row.result_path).read_text())
        measured = json.loads(part).get("contributions", {})
        shares = fee_shares({int(org): float(value) for org, value in measured.items()})
        datasets = {item.org: item.dataset for item in spec.inputs}
        payees = tuple(org for org in sorted(shares) if shares[org] > 0)
        return ProvenanceRecord(
            task_id=task_id,
            kind="fl",
            contributions=tuple(
                Contribution(org, datasets[org], units=shares[org], unit_price=1) for org in payees
            ),
            payees=payees,
            bps=tuple(shares[org] for org in payees),
        )

    def _usage_record(self, task_id: int, spec: TaskSpec, row: LocalTask) -> ProvenanceRecord:
        """Everything else: providers are paid by the rows they contributed × their unit price."""
        ledger = self.node.ledger
        contributions = []
        for item in spec.inputs:
            dataset = ledger.data.get_dataset(bytes.fromhex(item.dataset[2:]))
            parents = tuple(ledger.data.get_dataset(parent).owner_org for parent in dataset.parents)
            contributions.append(
                Contribution(
                    org_id=item.org,
                    dataset_id=item.dataset,
                    units=row.result_size or 0,
                    unit_price=dataset.unit_price,
                    upstream_bps=dataset.upstream_bps,
                    parent_orgs=parents,
                )
            )
        return provenance(task_id, spec.kind, spec.requester, contributions)

    # --- bookkeeping ------------------------------------------------------------------------
    def _fail(self, task_id: int, reason: FailureReason, message: str) -> None:
        logger.warning("task %d failed: %s (%s)", task_id, message, reason.name)
        try:
            self.node.ledger.tasks.fail_task(task_id, int(reason))
        except ChainRevert as exc:
            logger.info("task %d already closed on chain: %s", task_id, exc)
        except ChainError as exc:
            # another participant may have recorded its failure in the same block
            if self.node.ledger.tasks.get_task(task_id).status is not TaskStatus.FAILED:
                logger.error("could not record the failure of task %d: %s", task_id, exc)
        spec_hash = self.node.ledger.tasks.get_task(task_id).spec_hash
        self._record(task_id, spec_hash, state="failed", failure=f"{reason.name}: {message}")

    def _record(self, task_id: int, spec_hash: bytes, **fields: object) -> None:
        with Session(self.node.engine) as session:
            row = session.get(LocalTask, task_id)
            if row is None:
                row = LocalTask(task_id=task_id, spec_hash="0x" + spec_hash.hex())
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = datetime.now(UTC)
            session.add(row)
            session.commit()
