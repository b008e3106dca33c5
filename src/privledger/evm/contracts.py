"""Typed facades over the ledger contracts: one class per contract, one method per function.

Writes go through ``ChainClient.transact`` (pre-flighted, so a revert arrives as a decoded
``ChainRevert``) and return the ids the contract assigned, read from the emitted events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from eth_abi.exceptions import EncodingError
from eth_typing import ChecksumAddress
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import EventData, TxReceipt

from privledger.evm.client import ChainClient
from privledger.evm.rpc import EventCodec, FunctionCodec

MAX_UNITS = 2**32 - 1  # the most usage units a provider can anchor: the ledger keeps them in uint32


class Role(IntFlag):
    ORG_ADMIN = 1
    DATA_OWNER = 2
    OPERATOR = 4
    AUDITOR = 8


class OrgStatus(IntEnum):
    NONE = 0
    ACTIVE = 1
    SUSPENDED = 2


class Kind(IntFlag):
    PSI = 1
    PIR = 2
    STATS = 4
    FL = 8


class TaskStatus(IntEnum):
    NONE = 0
    SUBMITTED = 1
    AUTHORISED = 2
    RUNNING = 3
    COMPLETED = 4
    FAILED = 5
    SETTLED = 6


class ApprovalStatus(IntEnum):
    NONE = 0
    PENDING = 1
    APPROVED = 2
    REJECTED = 3


class FailureReason(IntEnum):
    REJECTED = 1
    EXPIRED = 2
    SPEC_MISMATCH = 3
    GRANT_INVALID = 4
    PROTOCOL_ERROR = 5
    PEER_UNREACHABLE = 6
    POLICY_VIOLATION = 7
    TERMS_VIOLATION = 8
    COMPONENT_MISMATCH = 9  # a participant lacks the task's component at its version and hash


@dataclass(frozen=True)
class Org:
    org_id: int
    name: str
    admin: ChecksumAddress
    endpoint: str
    node_key: bytes
    status: OrgStatus


@dataclass(frozen=True)
class Dataset:
    dataset_id: bytes
    owner_org: int
    schema_hash: bytes
    commitment: bytes
    row_count: int
    level: int
    unit_price: int
    upstream_bps: int
    retired: bool
    registered_at: int
    parents: tuple[bytes, ...]


@dataclass(frozen=True)
class ChainTerms:
    """The terms of a grant the GrantRegistry enforces itself; the rest is in the terms document."""

    kinds: Kind
    protocols: int  # bit 1 << id per allowed protocol id
    dealer: int  # the organisation allowed to deal or aggregate, 0 for none
    min_fee: int  # the fee floor, wei
    expiry: int
    max_uses: int
    parent_grant: bytes = bytes(32)  # the grant this one is derived under, zero for none

    def as_tuple(self) -> tuple[int, int, int, int, int, int, bytes]:
        return (
            int(self.kinds),
            self.protocols,
            self.dealer,
            self.min_fee,
            self.expiry,
            self.max_uses,
            self.parent_grant,
        )


@dataclass(frozen=True)
class Grant:
    grant_id: bytes
    dataset_id: bytes
    grantee_org: int
    kinds: Kind
    expiry: int
    max_uses: int
    used: int
    revoked: bool
    grantor: ChecksumAddress
    protocols: int
    dealer: int
    min_fee: int
    terms_hash: bytes
    parent_grant: bytes  # the grant this one is derived under, zero for none


@dataclass(frozen=True)
class Task:
    task_id: int
    spec_hash: bytes
    kind: Kind
    protocol: int
    status: TaskStatus
    requester_org: int
    requester: ChecksumAddress
    submitted_at: int
    deadline: int
    pending_approvals: int
    anchored_count: int
    failure_reason: int
    fee: int
    inputs: tuple[bytes, ...]
    participants: tuple[int, ...]


@dataclass(frozen=True)
class InputCharge:
    """What a task's settlement weighs one of its foreign inputs by, fixed at submission but for
    ``units``: ``min(units, max_units) * unit_price``, of which ``upstream_bps`` (out of 10,000)
    goes to the owners of the input's parents."""

    dataset_id: bytes
    owner_org: int
    unit_price: int  # wei per row, as the dataset's price was at submission
    max_units: int  # its registered rows (at most MAX_UNITS): the most units it weighs
    upstream_bps: int
    units: int  # what its owner anchored (0 until it anchors)


@dataclass(frozen=True)
class Anchor:
    """A participant's anchored result, read from its ``ResultAnchored`` event.

    The ledger stores only ``commitment``, i.e.
    ``keccak256(abi.encode(result_digest, transcript_hash))``; ``anchored_at`` is the timestamp of
    the block holding the event.
    """

    org_id: int
    result_digest: bytes
    transcript_hash: bytes
    commitment: bytes
    anchored_at: int
    block_number: int


@dataclass(frozen=True)
class Batch:
    batch_id: int
    root: bytes
    leaf_count: int
    org_id: int
    label: bytes
    anchored_at: int
    block_number: int


class ContractFacade:
    """A deployed contract seen through one account's client."""

    def __init__(self, client: ChainClient, contract: Contract) -> None:
        self.client = client
        self.contract = contract
        self._codecs: dict[str, EventCodec] = {}
        self._functions: dict[str, FunctionCodec | None] = {}

    @property
    def address(self) -> ChecksumAddress:
        return self.contract.address

    def _call(self, name: str, *args: Any) -> Any:
        encoded = self._encoded(name, args)
        if encoded is None:
            return self.client.call(self.contract.functions[name](*args))
        codec, data = encoded
        return self.client.decode_result(
            codec, self.address, self.client.call_data(self.address, data)
        )

    def _transact(self, name: str, *args: Any, value: int = 0) -> TxReceipt:
        encoded = self._encoded(name, args)
        if encoded is None:
            return self.client.transact(self.contract.functions[name](*args), value=value)
        return self.client.transact_data(self.address, encoded[1], value=value)

    def _encoded(self, name: str, args: tuple[Any, ...]) -> tuple[FunctionCodec, bytes] | None:
        """The call data of ``name(*args)`` encoded directly (web3 takes ~25x the CPU to build and
        check a contract function); None where web3's own path is kept: an overloaded function, an
        address argument (web3 insists on checksummed addresses), or arguments the ABI codec
        refuses, so the same checks raise the same errors as before."""
        if name not in self._functions:
            entries = [
                e
                for e in self.contract.abi
                if e.get("type") == "function" and e.get("name") == name
            ]
            codec = FunctionCodec.of(dict(entries[0])) if len(entries) == 1 else None
            if codec is not None and any("address" in t for t in codec.input_types):
                codec = None
            self._functions[name] = codec
        codec = self._functions[name]
        if codec is None or len(args) != len(codec.input_types):
            return None
        try:
            return codec, codec.selector + self.client.w3.codec.encode(codec.input_types, args)
        except (EncodingError, TypeError, ValueError, OverflowError):
            return None

    def events(self, receipt: TxReceipt, name: str) -> tuple[EventData, ...]:
        """The ``name`` events this contract emitted in ``receipt``."""
        return tuple(self.contract.events[name]().process_receipt(receipt, errors=DISCARD))

    def _event_arg(self, receipt: TxReceipt, event: str, arg: str) -> Any:
        """An argument of the first ``event`` this contract emitted in ``receipt`` (decoded with a
        codec built once, as ``events`` would decode it)."""
        codec = self._codecs.get(event)
        if codec is None:
            entry = next(
                e for e in self.contract.abi if e.get("type") == "event" and e.get("name") == event
            )
            codec = self._codecs[event] = EventCodec.of(dict(entry))
        address = self.address.lower()
        for log in receipt["logs"]:
            topics = [bytes(topic) for topic in log["topics"]]
            if log["address"].lower() == address and topics and topics[0] == codec.topic:
                return codec.decode(self.client.w3, topics, bytes(log["data"]))[arg]
        raise LookupError(f"{event} not emitted by transaction {receipt['transactionHash']!r}")


class OrgRegistry(ContractFacade):
    def register_org(self, name: str, admin: str, endpoint: str, node_key: bytes) -> int:
        receipt = self._transact("registerOrg", name, admin, endpoint, node_key)
        return int(self._event_arg(receipt, "OrgRegistered", "orgId"))

    def set_org_status(self, org_id: int, status: OrgStatus) -> TxReceipt:
        return self._transact("setOrgStatus", org_id, int(status))

    def update_node(self, org_id: int, endpoint: str, node_key: bytes) -> TxReceipt:
        return self._transact("updateNode", org_id, endpoint, node_key)

    def grant_roles(self, org_id: int, account: str, roles: Role) -> TxReceipt:
        return self._transact("grantRoles", org_id, account, int(roles))

    def revoke_roles(self, org_id: int, account: str, roles: Role) -> TxReceipt:
        return self._transact("revokeRoles", org_id, account, int(roles))

    def set_dealer_service(self, org_id: int, published: bool) -> TxReceipt:
        """Publish (or withdraw) the organisation's consent to deal or aggregate for others."""
        return self._transact("setDealerService", org_id, published)

    def is_dealer(self, org_id: int) -> bool:
        return bool(self._call("isDealer", org_id))

    def get_org(self, org_id: int) -> Org:
        name, admin, endpoint, node_key, status = self._call("getOrg", org_id)
        return Org(org_id, name, admin, endpoint, bytes(node_key), OrgStatus(status))

    def org_count(self) -> int:
        return int(self._call("orgCount"))

    def org_of(self, account: str) -> int:
        return int(self._call("orgOf", account))

    def roles_of(self, account: str) -> Role:
        return Role(self._call("rolesOf", account))

    def has_org_role(self, org_id: int, account: str, role: Role) -> bool:
        return bool(self._call("hasOrgRole", org_id, account, int(role)))

    def is_active(self, org_id: int) -> bool:
        return bool(self._call("isActive", org_id))

    def org_with_role(self, account: str, role: Role) -> int:
        """The Active organisation in which ``account`` holds every bit of ``role``; 0 if none."""
        return int(self._call("orgWithRole", account, int(role)))


class DataRegistry(ContractFacade):
    def register(
        self,
        *,
        schema_hash: bytes,
        commitment: bytes,
        row_count: int,
        level: int,
        unit_price: int,
        parents: Sequence[bytes] = (),
        upstream_bps: int = 0,
    ) -> bytes:
        receipt = self._transact(
            "register",
            schema_hash,
            commitment,
            row_count,
            level,
            unit_price,
            list(parents),
            upstream_bps,
        )
        return bytes(self._event_arg(receipt, "DatasetRegistered", "datasetId"))

    def retire(self, dataset_id: bytes) -> TxReceipt:
        return self._transact("retire", dataset_id)

    def set_unit_price(self, dataset_id: bytes, price: int) -> TxReceipt:
        return self._transact("setUnitPrice", dataset_id, price)

    def get_dataset(self, dataset_id: bytes) -> Dataset:
        record = self._call("getDataset", dataset_id)
        owner, schema, commitment, rows, level, price, upstream, retired, at, parents = record
        return Dataset(
            dataset_id,
            owner,
            bytes(schema),
            bytes(commitment),
            rows,
            level,
            price,
            upstream,
            retired,
            at,
            tuple(bytes(parent) for parent in parents),
        )

    def exists(self, dataset_id: bytes) -> bool:
        return bool(self._call("exists", dataset_id))

    def dataset_count(self) -> int:
        return int(self._call("datasetCount"))

    def owner_of(self, dataset_id: bytes) -> int:
        return int(self._call("ownerOf", dataset_id))

    def is_retired(self, dataset_id: bytes) -> bool:
        return bool(self._call("isRetired", dataset_id))

    def owner_and_retired(self, dataset_id: bytes) -> tuple[int, bool]:
        owner, retired = self._call("ownerAndRetired", dataset_id)
        return int(owner), bool(retired)

    def parents_of(self, dataset_id: bytes) -> tuple[bytes, ...]:
        return tuple(bytes(parent) for parent in self._call("parentsOf", dataset_id))

    def usage_of(self, dataset_id: bytes) -> int:
        """How many authorised tasks used the dataset as a foreign input (kept in its record)."""
        return int(self._call("usageOf", dataset_id))


class GrantRegistry(ContractFacade):
    def grant(self, dataset_id: bytes, grantee_org: int, terms: ChainTerms, document: str) -> bytes:
        """Issue a grant under ``terms`` and the terms ``document`` (hashed on chain)."""
        receipt = self._transact("grant", dataset_id, grantee_org, terms.as_tuple(), document)
        return bytes(self._event_arg(receipt, "GrantIssued", "grantId"))

    def revoke(self, grant_id: bytes) -> TxReceipt:
        return self._transact("revoke", grant_id)

    def approve(self, task_id: int, dataset_id: bytes) -> TxReceipt:
        return self._transact("approve", task_id, dataset_id)

    def reject(self, task_id: int, dataset_id: bytes) -> TxReceipt:
        return self._transact("reject", task_id, dataset_id)

    def get_grant(self, grant_id: bytes) -> Grant:
        record = self._call("getGrant", grant_id)
        dataset, grantee, kinds, expiry, max_uses, used, revoked, grantor = record[:8]
        protocols, dealer, min_fee, terms_hash, parent_grant = record[8:]
        return Grant(
            grant_id,
            bytes(dataset),
            grantee,
            Kind(kinds),
            expiry,
            max_uses,
            used,
            revoked,
            grantor,
            protocols,
            dealer,
            min_fee,
            bytes(terms_hash),
            bytes(parent_grant),
        )

    def is_usable(self, grant_id: bytes, grantee_org: int, dataset_id: bytes, kind: Kind) -> bool:
        return bool(self._call("isUsable", grant_id, grantee_org, dataset_id, int(kind)))

    def approval_of(self, task_id: int, dataset_id: bytes) -> ApprovalStatus:
        return ApprovalStatus(self._call("approvalOf", task_id, dataset_id))


class TaskLedger(ContractFacade):
    MAX_DURATION_S = 30 * 24 * 3600  # TaskLedger.MAX_DURATION: the latest deadline a task can have

    def submit_task(
        self,
        *,
        spec_hash: bytes,
        kind: Kind,
        protocol: int,
        inputs: Sequence[bytes],
        grant_ids: Sequence[bytes],
        participants: Sequence[int],
        deadline: int,
        fee: int = 0,
    ) -> int:
        return self.submit_task_receipt(
            spec_hash=spec_hash,
            kind=kind,
            protocol=protocol,
            inputs=inputs,
            grant_ids=grant_ids,
            participants=participants,
            deadline=deadline,
            fee=fee,
        )[0]

    def submit_task_receipt(
        self,
        *,
        spec_hash: bytes,
        kind: Kind,
        protocol: int,
        inputs: Sequence[bytes],
        grant_ids: Sequence[bytes],
        participants: Sequence[int],
        deadline: int,
        fee: int = 0,
    ) -> tuple[int, TxReceipt]:
        """The new task's id and the submission's receipt (whose events tell how it stands)."""
        receipt = self._transact(
            "submitTask",
            spec_hash,
            int(kind),
            protocol,
            list(inputs),
            list(grant_ids),
            list(participants),
            deadline,
            value=fee,
        )
        return int(self._event_arg(receipt, "TaskSubmitted", "taskId")), receipt

    def start_task(self, task_id: int) -> TxReceipt:
        return self._transact("startTask", task_id)

    def anchor_result(
        self, task_id: int, result_digest: bytes, transcript_hash: bytes, units: int = 0
    ) -> TxReceipt:
        """Anchor this organisation's result and, as a provider, the usage units it is paid for."""
        return self._transact("anchorResult", task_id, result_digest, transcript_hash, units)

    def fail_task(self, task_id: int, reason: int) -> TxReceipt:
        return self._transact("failTask", task_id, reason)

    def record_delivery(self, task_id: int) -> TxReceipt:
        """Record, as a provider, that what this organisation sends next gives the requester its
        output before it can anchor: the requester can then no longer fail the task."""
        return self._transact("recordDelivery", task_id)

    def deliveries_of(self, task_id: int) -> int:
        """The seats of the providers that recorded a delivery (bit i for participant i)."""
        return int(self._call("deliveriesOf", task_id))

    def report_absence(self, task_id: int) -> TxReceipt:
        """Report the participants that have not anchored as absent (this organisation anchored);
        the same call after :meth:`absence_grace` completes the task without them."""
        return self._transact("reportAbsence", task_id)

    def absence_of(self, task_id: int) -> tuple[int, int]:
        """The seats reported absent (bit i for participant i, 0 for no report) and when."""
        seats, reported_at = self._call("absenceOf", task_id)
        return int(seats), int(reported_at)

    def absence_grace(self) -> int:
        """Seconds the participants reported absent have to anchor."""
        return int(self._call("ABSENCE_GRACE"))

    def settle_task(self, task_id: int, provenance_hash: bytes) -> TxReceipt:
        """Settle a completed task; the ledger computes the payees from on-chain usage."""
        return self._transact("settleTask", task_id, provenance_hash)

    def units_of(self, task_id: int, org_id: int) -> int:
        """The usage units ``org_id`` anchored for the task as a provider (0 otherwise)."""
        return int(self._call("unitsOf", task_id, org_id))

    def charges_of(self, task_id: int) -> tuple[InputCharge, ...]:
        """The charges of the task's foreign inputs, in input order: what its settlement weighs
        them by."""
        return tuple(
            InputCharge(bytes(dataset), owner, price, max_units, upstream, units)
            for dataset, owner, price, max_units, upstream, units in self._call(
                "chargesOf", task_id
            )
        )

    def expire_task(self, task_id: int) -> TxReceipt:
        return self._transact("expireTask", task_id)

    def get_task(self, task_id: int) -> Task:
        record = self._call("getTask", task_id)
        spec, kind, protocol, status, requester_org, requester, submitted_at = record[:7]
        deadline, pending, anchored, reason, fee, inputs, participants = record[7:]
        return Task(
            task_id,
            bytes(spec),
            Kind(kind),
            protocol,
            TaskStatus(status),
            requester_org,
            requester,
            submitted_at,
            deadline,
            pending,
            anchored,
            reason,
            fee,
            tuple(bytes(item) for item in inputs),
            tuple(participants),
        )

    def task_count(self) -> int:
        return int(self._call("taskCount"))

    def anchor_of(self, task_id: int, org_id: int) -> bytes:
        """The commitment ``org_id`` anchored for the task; 32 zero bytes if none."""
        return bytes(self._call("anchorOf", task_id, org_id))

    def verify_anchor(
        self, task_id: int, org_id: int, result_digest: bytes, transcript_hash: bytes
    ) -> bool:
        return bool(self._call("verifyAnchor", task_id, org_id, result_digest, transcript_hash))

    def anchors(self, task_id: int) -> tuple[Anchor, ...]:
        """The task's anchored results, from its ``ResultAnchored`` events, checked on chain."""
        found = []
        for log in self._logs("ResultAnchored", task_id):
            args = log["args"]
            digest, transcript = bytes(args["resultDigest"]), bytes(args["transcriptHash"])
            if not self.verify_anchor(task_id, args["org"], digest, transcript):
                raise LookupError(f"ResultAnchored of org {args['org']} does not match the ledger")
            block = self.client.w3.eth.get_block(log["blockNumber"])
            commitment = self.anchor_of(task_id, args["org"])
            found.append(
                Anchor(
                    args["org"],
                    digest,
                    transcript,
                    commitment,
                    block["timestamp"],
                    log["blockNumber"],
                )
            )
        return tuple(found)

    def escrow_of(self, task_id: int) -> int:
        return int(self._call("escrowOf", task_id))

    def is_participant(self, task_id: int, org_id: int) -> bool:
        return bool(self._call("isParticipant", task_id, org_id))

    def settlement_of(self, task_id: int) -> tuple[bytes, bool]:
        """The provenance hash (from ``TaskSettled``) and whether the task is settled."""
        if not self._call("settlementOf", task_id):
            return bytes(32), False
        logs = self._logs("TaskSettled", task_id)
        return bytes(logs[-1]["args"]["provenanceHash"]), True

    def _logs(self, event: str, task_id: int) -> tuple[EventData, ...]:
        return tuple(
            self.contract.events[event]().get_logs(
                argument_filters={"taskId": task_id}, from_block=0
            )
        )


class Metering(ContractFacade):
    def withdraw(self, org_id: int, to: str, amount: int) -> TxReceipt:
        return self._transact("withdraw", org_id, to, amount)

    def balance_of(self, org_id: int) -> int:
        return int(self._call("balanceOf", org_id))

    def escrow_of(self, task_id: int) -> int:
        """The fee the task ledger holds in escrow for a task (the Metering asks the ledger)."""
        return int(self._call("escrowOf", task_id))

    def usage_of(self, dataset_id: bytes) -> int:
        """How many authorised tasks used the dataset as a foreign input."""
        return int(self._call("usageOf", dataset_id))


class BatchAnchor(ContractFacade):
    def anchor_batch(self, root: bytes, leaf_count: int, label: bytes) -> tuple[int, TxReceipt]:
        receipt = self._transact("anchorBatch", root, leaf_count, label)
        return int(self._event_arg(receipt, "BatchAnchored", "batchId")), receipt

    def verify(self, batch_id: int, digest: bytes, proof: Sequence[bytes]) -> bool:
        return bool(self._call("verify", batch_id, digest, list(proof)))

    def get_batch(self, batch_id: int) -> Batch:
        root, leaf_count, org_id, label, anchored_at, block_number = self._call(
            "getBatch", batch_id
        )
        return Batch(
            batch_id, bytes(root), leaf_count, org_id, bytes(label), anchored_at, block_number
        )

    def batch_count(self) -> int:
        return int(self._call("batchCount"))


class ProjectStatus(IntEnum):
    NONE = 0
    ACTIVE = 1
    CLOSED = 2


class MemberStatus(IntEnum):
    NONE = 0
    INVITED = 1
    MEMBER = 2


@dataclass(frozen=True)
class Project:
    project_id: int
    name: str
    owner_org: int
    status: ProjectStatus
    created_at: int


class ProjectRegistry(ContractFacade):
    def create_project(self, name: str) -> int:
        receipt = self._transact("createProject", name)
        return int(self._event_arg(receipt, "ProjectCreated", "projectId"))

    def invite(self, project_id: int, org_id: int) -> TxReceipt:
        return self._transact("invite", project_id, org_id)

    def withdraw_invitation(self, project_id: int, org_id: int) -> TxReceipt:
        return self._transact("withdrawInvitation", project_id, org_id)

    def accept_invitation(self, project_id: int) -> TxReceipt:
        return self._transact("acceptInvitation", project_id)

    def decline_invitation(self, project_id: int) -> TxReceipt:
        return self._transact("declineInvitation", project_id)

    def leave_project(self, project_id: int) -> TxReceipt:
        return self._transact("leaveProject", project_id)

    def remove_member(self, project_id: int, org_id: int) -> TxReceipt:
        return self._transact("removeMember", project_id, org_id)

    def add_dataset(self, project_id: int, dataset_id: bytes) -> TxReceipt:
        return self._transact("addDataset", project_id, dataset_id)

    def remove_dataset(self, project_id: int, dataset_id: bytes) -> TxReceipt:
        return self._transact("removeDataset", project_id, dataset_id)

    def close_project(self, project_id: int) -> TxReceipt:
        return self._transact("closeProject", project_id)

    def get_project(self, project_id: int) -> Project:
        name, owner_org, status, created_at = self._call("getProject", project_id)
        return Project(project_id, name, owner_org, ProjectStatus(status), created_at)

    def project_count(self) -> int:
        return int(self._call("projectCount"))

    def status_of(self, project_id: int, org_id: int) -> MemberStatus:
        return MemberStatus(self._call("statusOf", project_id, org_id))

    def members_of(self, project_id: int) -> dict[int, MemberStatus]:
        """Every invited or member organisation and its status, the owner first."""
        return {org: MemberStatus(status) for org, status in self._call("membersOf", project_id)}

    def datasets_of(self, project_id: int) -> tuple[bytes, ...]:
        return tuple(bytes(item) for item in self._call("datasetsOf", project_id))

    def has_dataset(self, project_id: int, dataset_id: bytes) -> bool:
        return bool(self._call("hasDataset", project_id, dataset_id))
