"""The typed client against a node played by httpx's MockTransport: what each answer parses
into, which exception each failure raises, and that no method answers an untyped dict."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import get_type_hints

import httpx
import pytest

from privledger.sdk import NodeClient, errors
from privledger.wire.tasks import TaskOut

from ..test_cli_output import TASK

URL = "http://node.test"
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> NodeClient:
    return NodeClient(URL, "token", transport=httpx.MockTransport(handler))


def error(status: int, code: str, **headers: str) -> Handler:
    body = {"error": {"code": code, "message": f"{code} said the node"}}
    return lambda request: httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "raised"),
    [
        (400, errors.ValidationFailed),
        (401, errors.Unauthorized),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (413, errors.ApiError),
        (422, errors.ValidationFailed),
        (500, errors.ApiError),
    ],
)
def test_each_refusal_is_its_own_exception(status: int, raised: type[errors.ApiError]) -> None:
    with client(error(status, "some_code")) as node, pytest.raises(raised) as refused:
        node.datasets()
    assert type(refused.value) is raised
    assert (refused.value.status, refused.value.code) == (status, "some_code")
    assert refused.value.message == "some_code said the node"
    assert str(refused.value) == f"{status} some_code: some_code said the node"


def test_rate_limited_says_when_to_retry_and_a_body_not_the_api_s_is_still_an_api_error() -> None:
    limiting = client(error(429, "rate_limited", **{"Retry-After": "3"}))
    with limiting as node, pytest.raises(errors.RateLimited) as limited:
        node.tasks()
    assert limited.value.retry_after_s == 3.0
    gateway = client(lambda request: httpx.Response(502, text="<html>bad gateway</html>"))
    with gateway as node, pytest.raises(errors.ApiError) as proxy:
        node.tasks()
    assert (proxy.value.status, proxy.value.code) == (502, "http_error")
    assert "bad gateway" in proxy.value.message


def test_an_unreachable_node_is_node_unreachable_not_an_httpx_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client(refuse) as node, pytest.raises(errors.NodeUnreachable) as unreachable:
        node.health()
    assert isinstance(unreachable.value, errors.PrivledgerError) and unreachable.value.url == URL
    assert isinstance(unreachable.value.__cause__, httpx.ConnectError)
    assert unreachable.value.code == "unreachable"


def test_an_answer_of_another_shape_is_a_privledger_error() -> None:
    other = client(lambda request: httpx.Response(200, json={"taskId": "seven"}))
    with other as node, pytest.raises(errors.PrivledgerError) as odd:
        node.task(7)
    assert odd.value.code == "unexpected_answer"


def test_answers_parse_into_the_api_s_models_and_newer_fields_are_ignored() -> None:
    with client(lambda request: httpx.Response(200, json={**TASK, "addedLater": 1})) as node:
        task = node.task(7)
    assert isinstance(task, TaskOut)
    assert (task.task_id, task.status, task.local_resources) == (7, "running", None)


def test_call_service_raises_task_failed_like_the_answer_waiters() -> None:
    failed = {**TASK, "status": "failed", "failureReason": 6, "localFailure": "peer vanished"}
    asked: list[str] = []

    def node_side(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            assert json.loads(request.content)["service"] == "customer-match"
            return httpx.Response(201, json={**TASK, "status": "submitted"})
        return httpx.Response(200, json=failed)

    with client(node_side) as node, pytest.raises(errors.TaskFailed) as failure:
        node.call_service(provider=1, service="customer-match", dataset="0x1", column="phone")
    assert failure.value.reason == "PEER_UNREACHABLE" and failure.value.task.task_id == 7
    assert failure.value.code == "task_failed" and "peer vanished" in str(failure.value)
    assert asked == ["POST /api/v1/service-calls", "GET /api/v1/tasks/7"]  # no result fetched


def test_waiting_past_the_timeout_raises_task_timeout_with_the_last_record() -> None:
    seen: list[str] = []
    running = client(lambda request: httpx.Response(200, json=TASK))
    with running as node, pytest.raises(errors.TaskTimeout) as late:
        node.wait(7, timeout_s=0, progress=lambda task: seen.append(task.status))
    assert late.value.task.status == "running" and late.value.code == "timeout"
    assert seen == ["running"]


def _returns_untyped(annotation: object) -> bool:
    text = repr(annotation)
    return "Any" in text or text in ("<class 'dict'>", "<class 'object'>")


def test_no_method_answers_an_untyped_dict() -> None:
    """Issue 17's acceptance: every public method says what it returns, and none is a
    ``dict[str, Any]``."""
    methods = [
        (name, member)
        for name, member in inspect.getmembers(NodeClient, inspect.isfunction)
        if not name.startswith("_")
    ]
    assert len(methods) >= 60
    for name, method in methods:
        returned = get_type_hints(method)["return"]
        assert not _returns_untyped(returned), (name, returned)
