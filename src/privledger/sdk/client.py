"""A typed client for a privledger node's REST API.

    from privledger.sdk import NodeClient

    with NodeClient("http://127.0.0.1:8003", token) as node:
        result = node.call_service(provider=1, service="customer-match",
                                   dataset="0x…", column="phone")
        print(len(result.items))

        # anonymous query, joint statistics, multi-lending check (operator token)
        answer = node.pir_query("0x<holder dataset>", column="phone", value_column="segment",
                                keys_dataset="0x<my keys dataset>", keys_column="phone")
        print(answer.values)  # {key: value or None}
        stats = node.joint_stats(["0x<mine>", "0x<theirs>"], column="amount", dealer=4)
        print(stats.mean, stats.variance)
        check = node.lending_check("0x<my query>", banks=["0x<bank b>"], dealer=4, limit=True)
        print(check.exceeds)

Every answer is a pydantic model of :mod:`privledger.wire` -- the very models the node's routes
declare -- or, for a settled task's output, one of :mod:`privledger.sdk.answers`. Every error is a
:class:`~privledger.sdk.errors.PrivledgerError` (:mod:`privledger.sdk.errors`): the API's
refusals by status, an unreachable node, a task that failed on chain or outlasted the wait.
The requester's side of a query -- its keys, its customer and limit -- is a dataset of its own
that never leaves its node: :meth:`NodeClient.register_rows` makes one (data owner token), and
:meth:`NodeClient.register_file` uploads a file from the caller's machine.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from privledger.sdk.answers import LendingAnswer, PirAnswer, PsiAnswer, ServiceResult, StatsAnswer
from privledger.sdk.bodies import TaskBody, lending_task, pir_task, stats_task
from privledger.sdk.errors import (
    ERRORS_BY_STATUS,
    ApiError,
    NodeUnreachable,
    PrivledgerError,
    RateLimited,
    TaskFailed,
    TaskTimeout,
)
from privledger.wire.approvals import ApprovalOut
from privledger.wire.assets import (
    AuditAction,
    AuditEntryOut,
    CallLogOut,
    DatasetOut,
    DerivedOut,
    GrantOut,
    Health,
    Me,
    ModelOut,
    OrgOut,
    ProofOut,
    ServiceOut,
    TokenOut,
    TxOut,
)
from privledger.wire.components import ComponentOut
from privledger.wire.errors import ErrorResponse
from privledger.wire.numerals import is_ascii_digits
from privledger.wire.onboarding import (
    ApplicationCreated,
    ApplicationOut,
    ApplicationStatus,
    ApprovalTemplate,
    RoleName,
)
from privledger.wire.pipelines import JobIn, PipelineOut, StepRecordIn
from privledger.wire.projects import ProjectOut, ProjectSummary, WorkflowItem
from privledger.wire.tasks import TaskOut, TaskResult

TERMINAL = {"settled", "failed"}
UPLOAD_CHUNK_BYTES = 1 << 20
LONG_POLL_S = 25.0  # how long one request of wait() may wait on the node (which caps it at 30)
TRACKING_HEADER = "X-Tracking-Secret"  # onboarding: the applicant's secret
# the longest wait a 429's Retry-After may ask for (the node's own ask a few seconds)
MAX_RETRY_AFTER_S = 3600.0
Progress = Callable[[TaskOut], None]
Model = TypeVar("Model", bound=BaseModel)
ApplicationState = Literal["submitted", "under_review", "approved", "rejected", "expired"]


class NodeClient:
    """One user's session with their organisation's node (a bearer token bound to one role;
    none for the onboarding portal's applicant)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport``: httpx's, e.g. one with a client certificate or a proxy of your own."""
        self._timeout_s = timeout_s
        self._url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self._url + "/api/v1",
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the wire ---------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise NodeUnreachable(self._url, str(exc) or type(exc).__name__) from exc
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def _one(self, model: type[Model], method: str, path: str, **kwargs: object) -> Model:
        response = self._send(method, path, **kwargs)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise _unexpected(response, exc) from exc

    def _many(self, model: type[Model], method: str, path: str, **kwargs: object) -> list[Model]:
        response = self._send(method, path, **kwargs)
        try:
            return TypeAdapter(list[model]).validate_json(response.content)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise _unexpected(response, exc) from exc

    # --- the node and the consortium ----------------------------------------------------------
    def health(self) -> Health:
        """Liveness, the node's organisation and the chain head it sees (no token needed)."""
        return self._one(Health, "GET", "/health")

    def me(self) -> Me:
        """The token's user, account and role, and the node's organisation."""
        return self._one(Me, "GET", "/me")

    def orgs(self) -> list[OrgOut]:
        """The consortium's organisations, as the chain records them."""
        return self._many(OrgOut, "GET", "/orgs")

    def org(self, org_id: int) -> OrgOut:
        return self._one(OrgOut, "GET", f"/orgs/{org_id}")

    def components(self) -> list[ComponentOut]:
        """The computation components the node has installed: name, version, code hash (what
        a task spec and a grant's ``components`` term name), protocols, security model."""
        return self._many(ComponentOut, "GET", "/components")

    # --- data owners: datasets ----------------------------------------------------------------
    def register_dataset(self, path: str, name: str, *, level: int, unit_price: int) -> DatasetOut:
        """Register a file of the organisation's import directory on the node, ``path``
        relative to it (the node refuses anything else); a file on this machine is
        :meth:`register_file`."""
        body = {"path": path, "name": name, "level": level, "unitPrice": unit_price}
        return self._one(DatasetOut, "POST", "/datasets", json=body)

    def derive_dataset(
        self, task_id: int, name: str, *, unit_price: int, upstream_bps: int = 0
    ) -> DatasetOut:
        """Register the rows of your input to a completed set task whose key is in the result
        your node learned, as a dataset whose parents are the task's inputs (data owner)."""
        body = {
            "taskId": task_id,
            "name": name,
            "unitPrice": unit_price,
            "upstreamBps": upstream_bps,
        }
        return self._one(DatasetOut, "POST", "/datasets/derived", json=body)

    def derive_task(self, task_id: int, *, upstream_bps: int = 0) -> list[DerivedOut]:
        """The derived datasets of a settled set task you requested whose result both parties
        learned: your aligned rows (registered in your name; ``upstream_bps`` of what they earn
        goes to their parents' owners) and each partner's, granted to you where its owner's
        grant consents (data owner; docs/pipelines.md)."""
        body = {"upstreamBps": upstream_bps}
        return self._many(DerivedOut, "POST", f"/tasks/{task_id}/derived", json=body)

    def register_file(self, path: Path, name: str, *, level: int, unit_price: int) -> DatasetOut:
        """Upload a CSV or Parquet file (by its suffix) from this machine and register it: it
        streams to the node in chunks, never read whole into memory on either side. Its length
        is declared, so a node whose cap it exceeds refuses it before it is sent."""
        with path.open("rb") as handle:
            return self._upload(
                iter(lambda: handle.read(UPLOAD_CHUNK_BYTES), b""),
                name,
                level=level,
                unit_price=unit_price,
                parquet=path.suffix.lower() in (".parquet", ".pq"),
                size=os.fstat(handle.fileno()).st_size,
            )

    def register_rows(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        name: str,
        level: int = 4,
        unit_price: int = 0,
    ) -> DatasetOut:
        """Register a few rows (e.g. the keys of a query, a customer and its limit) as a dataset
        of yours, by default at level 4 (core) and free: uploaded to the node as a CSV."""
        if not rows:
            raise ValueError("a dataset needs at least one row")
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(columns)
        writer.writerows(rows)
        return self._upload(text.getvalue().encode(), name, level=level, unit_price=unit_price)

    def _upload(
        self,
        content: Iterable[bytes] | bytes,
        name: str,
        *,
        level: int,
        unit_price: int,
        parquet: bool = False,
        size: int | None = None,
    ) -> DatasetOut:
        params = {
            "name": name,
            "level": level,
            "unitPrice": unit_price,
            "format": "parquet" if parquet else "csv",
        }
        headers = {"Content-Type": "application/vnd.apache.parquet" if parquet else "text/csv"}
        if size is not None:  # httpx then sends the chunks as they are, not chunk-encoded
            headers["Content-Length"] = str(size)
        return self._one(
            DatasetOut, "POST", "/datasets/upload", params=params, content=content, headers=headers
        )

    def datasets(self) -> list[DatasetOut]:
        """The datasets this node holds."""
        return self._many(DatasetOut, "GET", "/datasets")

    def dataset(self, dataset_id: str) -> DatasetOut:
        return self._one(DatasetOut, "GET", f"/datasets/{dataset_id}")

    # --- data owners: grants and approvals ----------------------------------------------------
    def grant(
        self,
        dataset: str,
        grantee_org: int,
        kinds: list[str],
        *,
        expires_in_s: int,
        max_uses: int,
        terms: dict[str, object] | None = None,
    ) -> GrantOut:
        """Grant the use of a dataset under ``terms`` (the REST API's camelCase terms object,
        docs/grants.md), or, without them, the default terms of ``kinds``."""
        body: dict[str, object] = {
            "dataset": dataset,
            "granteeOrg": grantee_org,
            "kinds": kinds,
            "expiresInS": expires_in_s,
            "maxUses": max_uses,
        }
        if terms is not None:
            body["terms"] = terms
        return self._one(GrantOut, "POST", "/grants", json=body)

    def grants(self) -> list[GrantOut]:
        """The grants on this node's datasets and to its organisation."""
        return self._many(GrantOut, "GET", "/grants")

    def grant_record(self, grant_id: str) -> GrantOut:
        """One grant as the chain records it now (uses, revocation)."""
        return self._one(GrantOut, "GET", f"/grants/{grant_id}")

    def revoke(self, grant_id: str) -> GrantOut:
        return self._one(GrantOut, "DELETE", f"/grants/{grant_id}")

    def approvals(self) -> list[ApprovalOut]:
        """Every approval request on your datasets (data owner token)."""
        return self._many(ApprovalOut, "GET", "/approvals")

    def approval(self, task_id: int, dataset: str) -> ApprovalOut:
        """One request in full: the task's verified spec, and its review against your terms."""
        return self._one(ApprovalOut, "GET", f"/approvals/{task_id}/{dataset}")

    def decide(
        self, task_id: int, dataset: str, decision: Literal["approve", "reject"]
    ) -> ApprovalOut:
        """Approve or reject a pending task's use of your dataset (signed on chain)."""
        path = f"/approvals/{task_id}/{dataset}"
        return self._one(ApprovalOut, "POST", path, json={"decision": decision})

    def inbox(self) -> list[WorkflowItem]:
        """Requests waiting for your organisation's decision: approvals, project invitations."""
        return self._many(WorkflowItem, "GET", "/workflow/inbox")

    def outbox(self) -> list[WorkflowItem]:
        """What your organisation asked of others, and how each was decided."""
        return self._many(WorkflowItem, "GET", "/workflow/outbox")

    def broadcast(self, raw_transaction: str) -> TxOut:
        """Relay a transaction signed elsewhere (a data owner's own key) to the chain."""
        return self._one(TxOut, "POST", "/transactions", json={"rawTransaction": raw_transaction})

    # --- PSI services -------------------------------------------------------------------------
    def define_service(
        self,
        name: str,
        dataset: str,
        column: str,
        *,
        output: Literal["requester", "both"] = "requester",
        price_wei: int = 0,
        description: str = "",
    ) -> ServiceOut:
        body = {
            "name": name,
            "dataset": dataset,
            "column": column,
            "output": output,
            "priceWei": price_wei,
            "description": description,
        }
        return self._one(ServiceOut, "POST", "/services", json=body)

    def services(self) -> list[ServiceOut]:
        return self._many(ServiceOut, "GET", "/services")

    def authorise_caller(
        self, service: str, org: int, *, max_calls: int, expires_in_s: int
    ) -> GrantOut:
        """Let organisation ``org`` call the service ``max_calls`` times (a grant on chain)."""
        body = {"org": org, "maxCalls": max_calls, "expiresInS": expires_in_s}
        return self._one(GrantOut, "POST", f"/services/{service}/callers", json=body)

    def call_log(self, service: str) -> list[CallLogOut]:
        return self._many(CallLogOut, "GET", f"/services/{service}/calls")

    def call_proof(self, service: str, task_id: int) -> ProofOut:
        """A call-log entry with its Merkle inclusion proof (``Conflict`` until its batch is
        anchored)."""
        return self._one(ProofOut, "GET", f"/services/{service}/calls/{task_id}/proof")

    def call_service(
        self,
        *,
        provider: int,
        service: str,
        dataset: str,
        column: str,
        protocol: Literal["ecdh", "kkrt", "rr22"] = "kkrt",
        timeout_s: float = 600.0,
        progress: Progress | None = None,
    ) -> ServiceResult:
        """Run another organisation's PSI service on one of your datasets and return the
        output (:class:`TaskFailed` if the task fails, :class:`TaskTimeout` after
        ``timeout_s``)."""
        body = {
            "provider": provider,
            "service": service,
            "dataset": dataset,
            "column": column,
            "protocol": protocol,
        }
        submitted = self._one(TaskOut, "POST", "/service-calls", json=body)
        task, result = self._settled(submitted.task_id, timeout_s, progress)
        return ServiceResult.of(task, result)

    # --- models -------------------------------------------------------------------------------
    def register_model(
        self, task_id: int, name: str, *, unit_price: int = 0, upstream_bps: int = 3_000
    ) -> ModelOut:
        """Register the model of a completed FL task this node took part in."""
        body = {
            "taskId": task_id,
            "name": name,
            "unitPrice": unit_price,
            "upstreamBps": upstream_bps,
        }
        return self._one(ModelOut, "POST", "/models", json=body)

    def models(self) -> list[ModelOut]:
        return self._many(ModelOut, "GET", "/models")

    def model(self, name: str) -> ModelOut:
        return self._one(ModelOut, "GET", f"/models/{name}")

    def prediction_log(self, model: str) -> list[CallLogOut]:
        return self._many(CallLogOut, "GET", f"/models/{model}/calls")

    def prediction_proof(self, model: str, task_id: int) -> ProofOut:
        return self._one(ProofOut, "GET", f"/models/{model}/calls/{task_id}/proof")

    # --- projects -----------------------------------------------------------------------------
    def create_project(self, name: str) -> ProjectOut:
        return self._one(ProjectOut, "POST", "/projects", json={"name": name})

    def projects(self) -> list[ProjectSummary]:
        """The projects your organisation is a member of or invited to."""
        return self._many(ProjectSummary, "GET", "/projects")

    def project(self, project_id: int) -> ProjectOut:
        return self._one(ProjectOut, "GET", f"/projects/{project_id}")

    def invite(self, project_id: int, org: int) -> ProjectOut:
        return self._one(
            ProjectOut, "POST", f"/projects/{project_id}/invitations", json={"org": org}
        )

    def decide_invitation(
        self, project_id: int, decision: Literal["accept", "decline"]
    ) -> ProjectOut:
        path = f"/projects/{project_id}/invitation"
        return self._one(ProjectOut, "POST", path, json={"decision": decision})

    def end_membership(self, project_id: int, org_id: int) -> None:
        """Leave a project (your organisation) or, as its owner, remove a member or withdraw
        an invitation."""
        self._send("DELETE", f"/projects/{project_id}/members/{org_id}")

    def add_project_dataset(self, project_id: int, dataset: str) -> ProjectOut:
        path = f"/projects/{project_id}/datasets"
        return self._one(ProjectOut, "POST", path, json={"dataset": dataset})

    def remove_project_dataset(self, project_id: int, dataset: str) -> ProjectOut:
        return self._one(ProjectOut, "DELETE", f"/projects/{project_id}/datasets/{dataset}")

    def close_project(self, project_id: int) -> ProjectOut:
        return self._one(ProjectOut, "POST", f"/projects/{project_id}/close")

    # --- the audit log (org admin, auditor, data owner) ---------------------------------------
    def audit_log(
        self,
        *,
        action: AuditAction | None = None,
        task_id: int | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[AuditEntryOut]:
        """Entries oldest first, ``limit`` (at most 500) at a time after the entry id ``after``:
        the next page starts after the last entry's id."""
        params: dict[str, str | int] = {"after": after, "limit": limit}
        if action is not None:
            params["action"] = action
        if task_id is not None:
            params["taskId"] = task_id
        return self._many(AuditEntryOut, "GET", "/audit", params=params)

    def audit_proof(self, entry_id: int) -> ProofOut:
        """An entry with its Merkle proof against the anchored batch (``Conflict`` until then)."""
        return self._one(ProofOut, "GET", f"/audit/{entry_id}/proof")

    # --- organisation admins: API tokens ------------------------------------------------------
    def tokens(self) -> list[TokenOut]:
        """The node's API tokens (never their secrets)."""
        return self._many(TokenOut, "GET", "/tokens")

    def revoke_token(self, token_id: int) -> TokenOut:
        return self._one(TokenOut, "POST", f"/tokens/{token_id}/revoke")

    # --- onboarding ---------------------------------------------------------------------------
    def apply(
        self,
        *,
        org_name: str,
        contact_name: str,
        contact_email: str,
        admin_address: str,
        node_endpoint: str,
        node_public_key: str,
        requested_roles: Sequence[RoleName] = (),
    ) -> ApplicationCreated:
        """Apply to join the consortium (no token): keep the returned ``tracking_secret``."""
        body = {
            "orgName": org_name,
            "contactName": contact_name,
            "contactEmail": contact_email,
            "adminAddress": admin_address,
            "nodeEndpoint": node_endpoint,
            "nodePublicKey": node_public_key,
            "requestedRoles": list(requested_roles),
        }
        return self._one(ApplicationCreated, "POST", "/onboarding/applications", json=body)

    def track(self, application_id: str, tracking_secret: str) -> ApplicationStatus:
        """The application's progress (no token: its tracking secret)."""
        path = f"/onboarding/applications/{application_id}"
        headers = {TRACKING_HEADER: tracking_secret}
        return self._one(ApplicationStatus, "GET", path, headers=headers)

    def applications(self, status: ApplicationState | None = None) -> list[ApplicationOut]:
        """Applications, oldest first (consortium admin token)."""
        params = {} if status is None else {"status": status}
        return self._many(ApplicationOut, "GET", "/onboarding/applications", params=params)

    def start_review(self, application_id: str) -> ApplicationOut:
        path = f"/onboarding/applications/{application_id}/review"
        return self._one(ApplicationOut, "POST", path)

    def reject_application(self, application_id: str, reason: str) -> ApplicationOut:
        path = f"/onboarding/applications/{application_id}/reject"
        return self._one(ApplicationOut, "POST", path, json={"reason": reason})

    def approval_transactions(self, application_id: str) -> ApprovalTemplate:
        """The calldata to sign elsewhere for a non-custodial approval."""
        path = f"/onboarding/applications/{application_id}/transactions"
        return self._one(ApprovalTemplate, "GET", path)

    def approve_application(
        self, application_id: str, signed_transactions: Sequence[str] | None = None
    ) -> ApplicationOut:
        """Register the applicant on chain: signed by the node with the admin's key, or with
        ``signed_transactions`` (those of :meth:`approval_transactions`, signed elsewhere)."""
        path = f"/onboarding/applications/{application_id}/approve"
        body = {
            "signedTransactions": None if signed_transactions is None else list(signed_transactions)
        }
        return self._one(ApplicationOut, "POST", path, json=body)

    # --- operators: tasks ---------------------------------------------------------------------
    def create_pipeline(self, job: JobIn) -> PipelineOut:
        """Record a pipeline's job on the node (operator; :mod:`privledger.sdk.pipeline` runs
        it)."""
        body = job.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return self._one(PipelineOut, "POST", "/pipelines", json=body)

    def pipelines(self) -> list[PipelineOut]:
        return self._many(PipelineOut, "GET", "/pipelines")

    def pipeline(self, pipeline_id: int) -> PipelineOut:
        return self._one(PipelineOut, "GET", f"/pipelines/{pipeline_id}")

    def record_step(self, pipeline_id: int, step: str, report: StepRecordIn) -> PipelineOut:
        """Report what a pipeline's runner did for one step (operator)."""
        body = report.model_dump(mode="json", by_alias=True, exclude_none=True)
        if report.error is None:
            body["error"] = None  # a step that went through clears an earlier error
        path = f"/pipelines/{pipeline_id}/steps/{step}"
        return self._one(PipelineOut, "PUT", path, json=body)

    def submit(self, body: TaskBody) -> TaskOut:
        """Submit a task (the API's TaskIn: kind, protocol, inputs, fee, ...;
        :mod:`privledger.sdk.bodies` spells the common ones)."""
        return self._one(TaskOut, "POST", "/tasks", json=body)

    def tasks(self) -> list[TaskOut]:
        """The tasks your node took part in, newest first."""
        return self._many(TaskOut, "GET", "/tasks")

    def task(self, task_id: int) -> TaskOut:
        return self._one(TaskOut, "GET", f"/tasks/{task_id}")

    def wait(
        self,
        task_id: int,
        *,
        timeout_s: float = 600.0,
        progress: Progress | None = None,
    ) -> TaskOut:
        """Follow the task until it is settled or failed and return its final record (a failed
        one too: :meth:`settled` raises instead); ``progress`` sees its record at every change
        of status (and at least every :data:`LONG_POLL_S`). Each request long-polls: the node
        answers when the status differs from the last one seen, so nothing polls. After
        ``timeout_s``: :class:`TaskTimeout`."""
        deadline = time.monotonic() + timeout_s
        task = self.task(task_id)
        while True:
            if progress is not None:
                progress(task)
            if task.status in TERMINAL:
                return task
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TaskTimeout(task, timeout_s)
            wait_s = min(LONG_POLL_S, remaining, self._timeout_s / 2)
            params = {"waitS": round(wait_s, 3), "unlessStatus": task.status}
            task = self._one(TaskOut, "GET", f"/tasks/{task_id}", params=params)

    def settled(
        self, task_id: int, *, timeout_s: float = 600.0, progress: Progress | None = None
    ) -> TaskOut:
        """:meth:`wait`, raising :class:`TaskFailed` for a task that failed."""
        task = self.wait(task_id, timeout_s=timeout_s, progress=progress)
        if task.status != "settled":
            raise TaskFailed(task)
        return task

    def result(self, task_id: int) -> TaskResult:
        """A settled task's output at this node, with the salt that opens its digest."""
        return self._one(TaskResult, "GET", f"/tasks/{task_id}/result")

    def _settled(
        self, task_id: int, timeout_s: float, progress: Progress | None
    ) -> tuple[TaskOut, TaskResult]:
        task = self.settled(task_id, timeout_s=timeout_s, progress=progress)
        return task, self.result(task_id)

    def psi_answer(
        self,
        task_id: int,
        *,
        size_only: bool = False,
        timeout_s: float = 600.0,
        progress: Progress | None = None,
    ) -> PsiAnswer:
        """Wait for a two-party PSI task and return its answer (``size_only``: a task whose
        output is ``size``)."""
        task, result = self._settled(task_id, timeout_s, progress)
        return PsiAnswer.of(task, result, size_only=size_only)

    # --- anonymous query, joint statistics, multi-lending (operator token) -----------------
    def pir_query(
        self,
        dataset: str,
        *,
        column: str,
        value_column: str,
        keys_dataset: str,
        keys_column: str | None = None,
        mode: Literal["pir", "bucket"] = "pir",
        fee_wei: int = 0,
        timeout_s: float = 600.0,
        progress: Progress | None = None,
    ) -> PirAnswer:
        """Look up the keys of your ``keys_dataset`` in the holder's ``dataset`` by keyword PIR
        (:func:`~privledger.sdk.bodies.pir_task`); waits and returns the :class:`PirAnswer`
        (:class:`TaskFailed` if the task fails). Not to wait: :meth:`submit` the task,
        :meth:`pir_answer` later."""
        body = pir_task(
            dataset,
            column=column,
            value_column=value_column,
            keys_dataset=keys_dataset,
            keys_column=keys_column,
            mode=mode,
            fee_wei=fee_wei,
        )
        task = self.submit(body)
        return self.pir_answer(task.task_id, timeout_s=timeout_s, progress=progress)

    def pir_answer(
        self, task_id: int, *, timeout_s: float = 600.0, progress: Progress | None = None
    ) -> PirAnswer:
        """Wait for a PIR task and return its answer: ``{key: value or None}``."""
        return PirAnswer.of(*self._settled(task_id, timeout_s, progress))

    def joint_stats(
        self,
        datasets: Sequence[str],
        *,
        column: str | Sequence[str],
        dealer: int,
        histogram_edges: Sequence[float] | None = None,
        frac_bits: int = 16,
        fee_wei: int = 0,
        timeout_s: float = 600.0,
        progress: Progress | None = None,
    ) -> StatsAnswer:
        """Count, sum, mean, variance (and a histogram with ``histogram_edges``) over one
        numeric column of every dataset, one of them yours
        (:func:`~privledger.sdk.bodies.stats_task`); waits and returns the
        :class:`StatsAnswer`. Not to wait: :meth:`submit` the task, :meth:`stats_answer`
        later."""
        body = stats_task(
            datasets,
            column=column,
            dealer=dealer,
            histogram_edges=histogram_edges,
            frac_bits=frac_bits,
            fee_wei=fee_wei,
        )
        task = self.submit(body)
        return self.stats_answer(task.task_id, timeout_s=timeout_s, progress=progress)

    def stats_answer(
        self, task_id: int, *, timeout_s: float = 600.0, progress: Progress | None = None
    ) -> StatsAnswer:
        """Wait for a joint-statistics task and return its answer."""
        return StatsAnswer.of(*self._settled(task_id, timeout_s, progress))

    def lending_check(
        self,
        query_dataset: str,
        *,
        banks: Sequence[str],
        dealer: int,
        limit: bool = False,
        customer_column: str = "customer",
        limit_column: str = "limit",
        bank_customer_column: str = "customer",
        amount_column: str = "amount",
        fee_wei: int = 0,
        timeout_s: float = 600.0,
        progress: Progress | None = None,
    ) -> LendingAnswer:
        """The customer in your ``query_dataset``: its total loans at ``banks`` or, with
        ``limit=True``, only whether that total exceeds the limit in ``limit_column``
        (:func:`~privledger.sdk.bodies.lending_task`); waits and returns the
        :class:`LendingAnswer`. Not to wait: :meth:`submit` the task, :meth:`lending_answer`
        later."""
        body = lending_task(
            query_dataset,
            banks=banks,
            dealer=dealer,
            customer_column=customer_column,
            limit_column=limit_column if limit else None,
            bank_customer_column=bank_customer_column,
            amount_column=amount_column,
            fee_wei=fee_wei,
        )
        task = self.submit(body)
        return self.lending_answer(task.task_id, timeout_s=timeout_s, progress=progress)

    def lending_answer(
        self, task_id: int, *, timeout_s: float = 600.0, progress: Progress | None = None
    ) -> LendingAnswer:
        """Wait for a multi-lending task and return its answer."""
        return LendingAnswer.of(*self._settled(task_id, timeout_s, progress))


def retry_after_s(value: str) -> float | None:
    """The wait a 429's ``Retry-After`` asks for: whole seconds in ASCII digits, at most
    :data:`MAX_RETRY_AFTER_S`; None for anything else (the HTTP-date form included). A hostile
    server's "²" or "1e309" must not make the SDK raise, nor a huge number make a caller that
    honours it wait for ever."""
    if not is_ascii_digits(value):
        return None
    digits = value.lstrip("0") or "0"
    if len(digits) > len(str(int(MAX_RETRY_AFTER_S))):  # never int() of a thousand digits
        return MAX_RETRY_AFTER_S
    return min(float(digits), MAX_RETRY_AFTER_S)


def _api_error(response: httpx.Response) -> ApiError:
    """The error the API's ``{"error": {"code", "message"}}`` body names, by status."""
    try:
        error = ErrorResponse.model_validate_json(response.content).error
        code, message = error.code, error.message
    except ValidationError:
        code, message = "http_error", response.text[:500]
    status = response.status_code
    if status == 429:
        seconds = retry_after_s(response.headers.get("Retry-After", ""))
        return RateLimited(status, code, message, retry_after_s=seconds)
    return ERRORS_BY_STATUS.get(status, ApiError)(status, code, message)


def _unexpected(response: httpx.Response, exc: ValidationError) -> PrivledgerError:
    """A 2xx answer that is not the body the route declares: a node of another version."""
    return PrivledgerError(
        "unexpected_answer",
        f"{response.request.method} {response.request.url.path} answered a body the SDK "
        f"does not read ({exc.error_count()} errors; is the node of another version?): {exc}",
    )
