"""A small client for a privledger node's REST API.

    from privledger.sdk import NodeClient

    with NodeClient("http://127.0.0.1:8003", token) as node:
        result = node.call_service(provider=1, service="customer-match",
                                   dataset="0x…", column="phone")
        print(len(result.items))

Every API error arrives as ``PrivledgerError`` with the API's code and message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx

TERMINAL = {"settled", "failed"}


class PrivledgerError(RuntimeError):
    """The node refused a request: ``status``, ``code`` and ``message`` say why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


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
        body = {"path": path, "name": name, "level": level, "unitPrice": unit_price}
        result: dict[str, Any] = self._request("POST", "/datasets", json=body)
        return result

    def datasets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/datasets")
        return result

    def grant(
        self, dataset: str, grantee_org: int, kinds: list[str], *, expires_in_s: int, max_uses: int
    ) -> dict[str, Any]:
        body = {
            "dataset": dataset,
            "granteeOrg": grantee_org,
            "kinds": kinds,
            "expiresInS": expires_in_s,
            "maxUses": max_uses,
        }
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

    def task(self, task_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/tasks/{task_id}")
        return result

    def wait(
        self, task_id: int, *, timeout_s: float = 600.0, poll_s: float = 0.25
    ) -> dict[str, Any]:
        """Poll until the task is settled or failed."""
        deadline = time.monotonic() + timeout_s
        while True:
            task = self.task(task_id)
            if task["status"] in TERMINAL:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} is still {task['status']} after {timeout_s}s")
            time.sleep(poll_s)

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
        protocol: Literal["ecdh", "kkrt"] = "kkrt",
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
