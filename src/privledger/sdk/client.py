"""A small client for a privledger node's REST API.

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

Every API error arrives as ``PrivledgerError`` with the API's code and message; a task that
fails on chain as :class:`TaskFailed` (a ``PrivledgerError``) with the reason recorded there.
The requester's side of a query -- its keys, its customer and limit -- is a dataset of its own
that never leaves its node: :meth:`NodeClient.register_rows` makes one (data owner token), and
:meth:`NodeClient.register_file` uploads a file from the caller's machine.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

TERMINAL = {"settled", "failed"}
UPLOAD_CHUNK_BYTES = 1 << 20
LONG_POLL_S = 25.0  # how long one request of wait() may wait on the node (which caps it at 30)
FAILURE_REASONS = {
    1: "REJECTED",
    2: "EXPIRED",
    3: "SPEC_MISMATCH",
    4: "GRANT_INVALID",
    5: "PROTOCOL_ERROR",
    6: "PEER_UNREACHABLE",
    7: "POLICY_VIOLATION",
    8: "TERMS_VIOLATION",
}  # privledger.evm.contracts.FailureReason, without importing the chain stack
Progress = Callable[[dict[str, Any]], None]
StatsOp = Literal["count", "sum", "mean", "variance", "histogram"]
STATS_OPS: tuple[StatsOp, ...] = ("count", "sum", "mean", "variance", "histogram")


class PrivledgerError(RuntimeError):
    """The node refused a request: ``status``, ``code`` and ``message`` say why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class TaskFailed(PrivledgerError):
    """The task failed on chain (the fee went back to the requester): ``reason`` is the
    recorded FailureReason's name, ``task`` the task's final record."""

    def __init__(self, task: dict[str, Any]) -> None:
        code = int(task.get("failureReason") or 0)
        self.reason = FAILURE_REASONS.get(code, str(code))
        self.task = task
        detail = task.get("localFailure") or "see the task's timeline"
        super().__init__(
            409, "task_failed", f"task {task['taskId']} failed: {self.reason} ({detail})"
        )


@dataclass(frozen=True)
class TaskAnswer:
    """A settled task's output as the requester received it, with the salt that opens the
    digest anchored on chain and the task's final record."""

    task_id: int
    task: dict[str, Any]
    salt: str
    result_digest: str

    def to_json(self) -> dict[str, Any]:
        """The answer for printing: camelCase keys, the task's id, status and fee only."""
        fields = {
            name: value
            for name, value in vars(self).items()
            if name not in ("task_id", "task", "salt", "result_digest")
        }
        head = {"taskId": self.task_id, "status": self.task["status"], "feeWei": self.task["fee"]}
        tail = {"resultDigest": self.result_digest, "salt": self.salt}
        return {**head, **{_camel(name): value for name, value in fields.items()}, **tail}


@dataclass(frozen=True)
class PsiAnswer(TaskAnswer):
    """Two-party PSI: the intersection's size and, unless only the size was released, its
    items."""

    size: int
    intersection: list[str] | None


@dataclass(frozen=True)
class PirAnswer(TaskAnswer):
    """Keyword PIR: each key asked for, with its value at the holder or ``None`` (absent)."""

    values: dict[str, str | None]


@dataclass(frozen=True)
class StatsAnswer(TaskAnswer):
    """Joint statistics over every input's rows. ``suppressed``: the group is below the
    inputs' minimum group size, so nothing but that fact is released; a histogram bin below it
    is ``None``."""

    suppressed: bool
    count: int | None
    sum: float | None
    mean: float | None
    variance: float | None
    histogram: list[int | None] | None


@dataclass(frozen=True)
class LendingAnswer(TaskAnswer):
    """Multi-lending check: the customer's total across the other banks (``mode="total"``) or
    only whether it exceeds the limit (``mode="exceeds"``: equal is not exceeding)."""

    mode: Literal["total", "exceeds"]
    banks: int
    total: int | None
    exceeds: bool | None

    def to_json(self) -> dict[str, Any]:
        """As :meth:`TaskAnswer.to_json`, without the field the mode does not answer."""
        unanswered = "total" if self.mode == "exceeds" else "exceeds"
        return {name: value for name, value in super().to_json().items() if name != unanswered}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def psi_task(
    mine: str,
    theirs: str,
    *,
    column: str,
    their_column: str | None = None,
    protocol: str = "ecdh",
    output: Literal["requester", "both", "size"] = "requester",
    fee_wei: int = 0,
) -> dict[str, Any]:
    """The task body of a two-party PSI: ``column`` of your dataset ``mine`` against
    ``their_column`` (default: the same name) of the partner's ``theirs``; ``output`` says who
    learns the intersection: you, both, or both only its size (ECDH only)."""
    return {
        "kind": "psi",
        "protocol": protocol,
        "inputs": [
            {"dataset": mine, "column": column},
            {"dataset": theirs, "column": their_column or column},
        ],
        "output": output,
        "feeWei": fee_wei,
    }


def pir_task(
    dataset: str,
    *,
    column: str,
    value_column: str,
    keys_dataset: str,
    keys_column: str | None = None,
    mode: Literal["pir", "bucket"] = "pir",
    fee_wei: int = 0,
) -> dict[str, Any]:
    """The task body of a keyword-PIR query: the keys in ``keys_column`` of your own
    ``keys_dataset`` looked up in ``column`` of the holder's ``dataset``, returning
    ``value_column``. ``mode="bucket"`` is the cheaper k-anonymous lookup (the holder learns a
    bucket of ~k keys), not full query privacy."""
    return {
        "kind": "pir",
        "protocol": "simplepir" if mode == "pir" else "bucket",
        "inputs": [
            {"dataset": keys_dataset, "column": keys_column or column},
            {"dataset": dataset, "column": column, "valueColumn": value_column},
        ],
        "feeWei": fee_wei,
    }


def stats_task(
    datasets: Sequence[str],
    *,
    column: str | Sequence[str],
    dealer: int,
    histogram_edges: Sequence[float] | None = None,
    frac_bits: int = 16,
    fee_wei: int = 0,
) -> dict[str, Any]:
    """The task body of joint statistics over one numeric column of each dataset (one of them
    yours); ``column`` names it for all, or one per dataset. ``dealer`` is an organisation
    holding none of the inputs (it deals the correlated randomness). ``frac_bits`` trades range
    for precision: every party's sum of squares times 2^frac_bits must stay below 2^63 / N."""
    columns = [column] * len(datasets) if isinstance(column, str) else list(column)
    if len(columns) != len(datasets):
        raise ValueError(f"{len(columns)} columns for {len(datasets)} datasets")
    body: dict[str, Any] = {
        "kind": "stats",
        "protocol": "joint-stats",
        "inputs": [{"dataset": d, "column": c} for d, c in zip(datasets, columns, strict=True)],
        "dealer": dealer,
        "fracBits": frac_bits,
        "feeWei": fee_wei,
    }
    if histogram_edges is not None:
        body["histogramEdges"] = [float(edge) for edge in histogram_edges]
    return body


def lending_task(
    query_dataset: str,
    *,
    banks: Sequence[str],
    dealer: int,
    customer_column: str = "customer",
    limit_column: str | None = None,
    bank_customer_column: str = "customer",
    amount_column: str = "amount",
    fee_wei: int = 0,
) -> dict[str, Any]:
    """The task body of a multi-lending check: your ``query_dataset`` holds the customer (one
    row) and, with ``limit_column``, the limit -- then only "exceeds the limit?" is answered,
    else the total of the customer's amounts at ``banks`` (their datasets)."""
    query: dict[str, Any] = {"dataset": query_dataset, "column": customer_column}
    if limit_column is not None:
        query["valueColumn"] = limit_column
    inputs = [query]
    inputs += [
        {"dataset": bank, "column": bank_customer_column, "valueColumn": amount_column}
        for bank in banks
    ]
    return {
        "kind": "stats",
        "protocol": "lending-exceeds" if limit_column is not None else "lending-total",
        "inputs": inputs,
        "dealer": dealer,
        "feeWei": fee_wei,
    }


@dataclass(frozen=True)
class ServiceResult:
    task_id: int
    items: list[str]
    salt: str
    result_digest: str
    task: dict[str, Any]


class NodeClient:
    """One user's session with their organisation's node (a bearer token bound to one role)."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 60.0) -> None:
        self._timeout_s = timeout_s
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
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

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", response.text[:500]
            raise PrivledgerError(response.status_code, code, message)
        return response.json()

    # --- data owners --------------------------------------------------------------------
    def register_dataset(
        self, path: str, name: str, *, level: int, unit_price: int
    ) -> dict[str, Any]:
        """Register a file of the organisation's import directory on the node, ``path``
        relative to it (the node refuses anything else); a file on this machine is
        :meth:`register_file`."""
        body = {"path": path, "name": name, "level": level, "unitPrice": unit_price}
        result: dict[str, Any] = self._request("POST", "/datasets", json=body)
        return result

    def register_file(
        self, path: Path, name: str, *, level: int, unit_price: int
    ) -> dict[str, Any]:
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

    def _upload(
        self,
        content: Iterable[bytes] | bytes,
        name: str,
        *,
        level: int,
        unit_price: int,
        parquet: bool = False,
        size: int | None = None,
    ) -> dict[str, Any]:
        params = {
            "name": name,
            "level": level,
            "unitPrice": unit_price,
            "format": "parquet" if parquet else "csv",
        }
        headers = {"Content-Type": "application/vnd.apache.parquet" if parquet else "text/csv"}
        if size is not None:  # httpx then sends the chunks as they are, not chunk-encoded
            headers["Content-Length"] = str(size)
        result: dict[str, Any] = self._request(
            "POST", "/datasets/upload", params=params, content=content, headers=headers
        )
        return result

    def datasets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/datasets")
        return result

    def register_rows(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        name: str,
        level: int = 4,
        unit_price: int = 0,
    ) -> dict[str, Any]:
        """Register a few rows (e.g. the keys of a query, a customer and its limit) as a dataset
        of yours, by default at level 4 (core) and free: uploaded to the node as a CSV."""
        if not rows:
            raise ValueError("a dataset needs at least one row")
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(columns)
        writer.writerows(rows)
        return self._upload(text.getvalue().encode(), name, level=level, unit_price=unit_price)

    def grant(
        self,
        dataset: str,
        grantee_org: int,
        kinds: list[str],
        *,
        expires_in_s: int,
        max_uses: int,
        terms: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Grant the use of a dataset under ``terms`` (the REST API's camelCase terms object,
        docs/grants.md), or, without them, the default terms of ``kinds``."""
        body: dict[str, Any] = {
            "dataset": dataset,
            "granteeOrg": grantee_org,
            "kinds": kinds,
            "expiresInS": expires_in_s,
            "maxUses": max_uses,
        }
        if terms is not None:
            body["terms"] = terms
        result: dict[str, Any] = self._request("POST", "/grants", json=body)
        return result

    def revoke(self, grant_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("DELETE", f"/grants/{grant_id}")
        return result

    def define_service(
        self,
        name: str,
        dataset: str,
        column: str,
        *,
        output: Literal["requester", "both"] = "requester",
        price_wei: int = 0,
        description: str = "",
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "dataset": dataset,
            "column": column,
            "output": output,
            "priceWei": price_wei,
            "description": description,
        }
        result: dict[str, Any] = self._request("POST", "/services", json=body)
        return result

    def authorise_caller(
        self, service: str, org: int, *, max_calls: int, expires_in_s: int
    ) -> dict[str, Any]:
        body = {"org": org, "maxCalls": max_calls, "expiresInS": expires_in_s}
        result: dict[str, Any] = self._request("POST", f"/services/{service}/callers", json=body)
        return result

    def call_log(self, service: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", f"/services/{service}/calls")
        return result

    def call_proof(self, service: str, task_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/services/{service}/calls/{task_id}/proof")
        return result

    # --- operators ----------------------------------------------------------------------
    def register_model(
        self, task_id: int, name: str, *, unit_price: int = 0, upstream_bps: int = 3_000
    ) -> dict[str, Any]:
        """Register the model of a completed horizontal FL task this node aggregated."""
        body = {
            "taskId": task_id,
            "name": name,
            "unitPrice": unit_price,
            "upstreamBps": upstream_bps,
        }
        result: dict[str, Any] = self._request("POST", "/models", json=body)
        return result

    def models(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/models")
        return result

    def prediction_log(self, model: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", f"/models/{model}/calls")
        return result

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Submit a task (the API's TaskIn: kind, protocol, inputs, fee, ...)."""
        result: dict[str, Any] = self._request("POST", "/tasks", json=body)
        return result

    def tasks(self) -> list[dict[str, Any]]:
        """The tasks your node took part in, newest first."""
        result: list[dict[str, Any]] = self._request("GET", "/tasks")
        return result

    def approvals(self) -> list[dict[str, Any]]:
        """Every approval request on your datasets (data owner token)."""
        result: list[dict[str, Any]] = self._request("GET", "/approvals")
        return result

    def decide(
        self, task_id: int, dataset: str, decision: Literal["approve", "reject"]
    ) -> dict[str, Any]:
        """Approve or reject a pending task's use of your dataset (signed on chain)."""
        path = f"/approvals/{task_id}/{dataset}"
        result: dict[str, Any] = self._request("POST", path, json={"decision": decision})
        return result

    def inbox(self) -> list[dict[str, Any]]:
        """Requests waiting for your organisation's decision: approvals, project invitations."""
        result: list[dict[str, Any]] = self._request("GET", "/workflow/inbox")
        return result

    def task(self, task_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/tasks/{task_id}")
        return result

    def wait(
        self,
        task_id: int,
        *,
        timeout_s: float = 600.0,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Follow the task until it is settled or failed; ``progress`` sees its record at every
        change of status (and at least every :data:`LONG_POLL_S`). Each request long-polls: the
        node answers when the status differs from the last one seen, so nothing polls."""
        deadline = time.monotonic() + timeout_s
        task = self.task(task_id)
        while True:
            if progress is not None:
                progress(task)
            if task["status"] in TERMINAL:
                return task
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"task {task_id} is still {task['status']} after {timeout_s}s")
            wait_s = min(LONG_POLL_S, remaining, self._timeout_s / 2)
            params = {"waitS": round(wait_s, 3), "unlessStatus": task["status"]}
            task = self._request("GET", f"/tasks/{task_id}", params=params)

    def result(self, task_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/tasks/{task_id}/result")
        return result

    def call_service(
        self,
        *,
        provider: int,
        service: str,
        dataset: str,
        column: str,
        protocol: Literal["ecdh", "kkrt", "rr22"] = "kkrt",
        timeout_s: float = 600.0,
    ) -> ServiceResult:
        """Run another organisation's PSI service on one of your datasets and return the output."""
        body = {
            "provider": provider,
            "service": service,
            "dataset": dataset,
            "column": column,
            "protocol": protocol,
        }
        submitted = self._request("POST", "/service-calls", json=body)
        task = self.wait(int(submitted["taskId"]), timeout_s=timeout_s)
        if task["status"] != "settled":
            raise PrivledgerError(
                409, "task_failed", f"task {task['taskId']} failed: {task.get('localFailure')}"
            )
        output = self.result(int(task["taskId"]))
        return ServiceResult(
            task_id=int(task["taskId"]),
            items=list(output["items"]),
            salt=str(output["salt"]),
            result_digest=str(output["resultDigest"]),
            task=task,
        )

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
        (:func:`pir_task`); waits and returns the :class:`PirAnswer` (``TaskFailed`` if the
        task fails). Not to wait: :meth:`submit` the :func:`pir_task`, :meth:`pir_answer`
        later."""
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
        return self.pir_answer(int(task["taskId"]), timeout_s=timeout_s, progress=progress)

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
        task, items, salt, digest = self._settled_items(task_id, timeout_s, progress)
        if size_only:
            return PsiAnswer(task_id, task, salt, digest, size=int(items[0]), intersection=None)
        return PsiAnswer(task_id, task, salt, digest, size=len(items), intersection=items)

    def pir_answer(
        self, task_id: int, *, timeout_s: float = 600.0, progress: Progress | None = None
    ) -> PirAnswer:
        """Wait for a PIR task and return its answer: ``{key: value or None}``."""
        task, items, salt, digest = self._settled_items(task_id, timeout_s, progress)
        pairs = [json.loads(item) for item in items]
        values = {str(key): None if value is None else str(value) for key, value in pairs}
        return PirAnswer(task_id, task, salt, digest, values=values)

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
        numeric column of every dataset, one of them yours (:func:`stats_task`); waits and
        returns the :class:`StatsAnswer`. Not to wait: :meth:`submit` the :func:`stats_task`,
        :meth:`stats_answer` later."""
        body = stats_task(
            datasets,
            column=column,
            dealer=dealer,
            histogram_edges=histogram_edges,
            frac_bits=frac_bits,
            fee_wei=fee_wei,
        )
        task = self.submit(body)
        return self.stats_answer(int(task["taskId"]), timeout_s=timeout_s, progress=progress)

    def stats_answer(
        self, task_id: int, *, timeout_s: float = 600.0, progress: Progress | None = None
    ) -> StatsAnswer:
        """Wait for a joint-statistics task and return its answer."""
        task, items, salt, digest = self._settled_items(task_id, timeout_s, progress)
        (item,) = items
        fields = json.loads(item)
        histogram = fields.get("histogram")
        return StatsAnswer(
            task_id,
            task,
            salt,
            digest,
            suppressed=bool(fields["suppressed"]),
            count=fields.get("count"),
            sum=fields.get("sum"),
            mean=fields.get("mean"),
            variance=fields.get("variance"),
            histogram=None if histogram is None else list(histogram),
        )

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
        (:func:`lending_task`); waits and returns the :class:`LendingAnswer`. Not to wait:
        :meth:`submit` the :func:`lending_task`, :meth:`lending_answer` later."""
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
        return self.lending_answer(int(task["taskId"]), timeout_s=timeout_s, progress=progress)

    def lending_answer(
        self, task_id: int, *, timeout_s: float = 600.0, progress: Progress | None = None
    ) -> LendingAnswer:
        """Wait for a multi-lending task and return its answer."""
        task, items, salt, digest = self._settled_items(task_id, timeout_s, progress)
        (item,) = items
        fields = json.loads(item)
        return LendingAnswer(
            task_id,
            task,
            salt,
            digest,
            mode=fields["mode"],
            banks=int(fields["banks"]),
            total=fields.get("total"),
            exceeds=fields.get("exceeds"),
        )

    def _settled_items(
        self, task_id: int, timeout_s: float, progress: Progress | None
    ) -> tuple[dict[str, Any], list[str], str, str]:
        task = self.wait(task_id, timeout_s=timeout_s, progress=progress)
        if task["status"] != "settled":
            raise TaskFailed(task)
        output = self.result(task_id)
        return task, list(output["items"]), str(output["salt"]), str(output["resultDigest"])
