"""What the SDK raises: one hierarchy under :class:`PrivledgerError`.

- :class:`ApiError` -- the node answered with an error (``status``, ``code``, ``message`` from the
  API's ``{"error": {"code", "message"}}`` body); by status :class:`ValidationFailed` (400,
  422), :class:`Unauthorized` (401), :class:`Forbidden` (403), :class:`NotFound` (404),
  :class:`Conflict` (409), :class:`RateLimited` (429, with ``retry_after_s``);
- :class:`NodeUnreachable` -- no answer: the connection failed or timed out (the ``httpx``
  transport error is its ``__cause__``);
- :class:`TaskFailed` -- a task failed on chain, with the recorded reason and its final record;
- :class:`TaskTimeout` -- a task was still running when the caller stopped waiting.
"""

from __future__ import annotations

from privledger.wire.tasks import TaskOut

# privledger.evm.contracts.FailureReason, without importing the chain stack
FAILURE_REASONS = {
    1: "REJECTED",
    2: "EXPIRED",
    3: "SPEC_MISMATCH",
    4: "GRANT_INVALID",
    5: "PROTOCOL_ERROR",
    6: "PEER_UNREACHABLE",
    7: "POLICY_VIOLATION",
    8: "TERMS_VIOLATION",
    9: "COMPONENT_MISMATCH",
}


class PrivledgerError(Exception):
    """Anything the SDK raises: ``code`` says what, machine-readably; ``message`` for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ApiError(PrivledgerError):
    """The node refused a request: ``status``, ``code`` and ``message`` say why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = status

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class ValidationFailed(ApiError):
    """400 or 422: the request's body, query or file is not what the API accepts."""


class Unauthorized(ApiError):
    """401: no token, or one the node does not know, or expired or revoked."""


class Forbidden(ApiError):
    """403: the token's role, or the organisation, may not do this."""


class NotFound(ApiError):
    """404: no such task, dataset, grant, service, model, project or application here."""


class Conflict(ApiError):
    """409: the state forbids it now (a duplicate name, a task not settled yet, ...)."""


class RateLimited(ApiError):
    """429: too many requests; ``retry_after_s`` is the node's ``Retry-After``, if it sent one."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(status, code, message)
        self.retry_after_s = retry_after_s


ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
}


class NodeUnreachable(PrivledgerError):
    """The node did not answer: ``url`` is where the SDK tried."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__("unreachable", f"cannot reach {url}: {reason}")
        self.url = url


class TaskFailed(PrivledgerError):
    """The task failed on chain (the fee went back to the requester): ``reason`` is the
    recorded FailureReason's name, ``task`` the task's final record."""

    def __init__(self, task: TaskOut) -> None:
        self.reason = FAILURE_REASONS.get(task.failure_reason, str(task.failure_reason))
        self.task = task
        detail = task.local_failure or "see the task's timeline"
        super().__init__("task_failed", f"task {task.task_id} failed: {self.reason} ({detail})")


class TaskTimeout(PrivledgerError):
    """The caller stopped waiting for a task that is still under way (it goes on): ``task`` is
    its last record."""

    def __init__(self, task: TaskOut, timeout_s: float) -> None:
        self.task = task
        super().__init__(
            "timeout", f"task {task.task_id} is still {task.status} after {timeout_s:g}s"
        )
