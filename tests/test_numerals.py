"""Numbers read from the wire and from local files: ASCII digits only, everywhere.

``str.isdigit()`` also takes superscript and circled digits ("²", "①"), which ``int()`` and
``float()`` refuse with a ValueError, and ``int()`` and regular expressions' ``\\d`` take other
scripts' decimal digits ("٣") as another spelling of an ASCII number. The red team found four
places left: the SDK raising on a hostile server's ``Retry-After`` (or told to wait for ever),
the API's body limit answering 500 for a ``Content-Length`` of "²", the policy file reading "٣"
as level 3 and crashing on "²", and the log context reading "/tasks/٤١" as task 41."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from privledger.api.metrics import TaskLogContext
from privledger.api.middleware import LimitJsonBodies
from privledger.node.policy import Policies, PolicyError
from privledger.observability.logs import current_task
from privledger.sdk import NodeClient, errors
from privledger.sdk.client import MAX_RETRY_AFTER_S
from privledger.wire.numerals import ascii_number

HOSTILE = ["²", "①", "٣", "1e309", "inf", "nan", "-1", " 3", "3.5", "", "9" * 400]


@pytest.mark.security
@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_retry_after_neither_raises_in_the_sdk_nor_waits_for_ever(value: str) -> None:
    body = {"error": {"code": "rate_limited", "message": "slow down"}}
    transport = httpx.MockTransport(
        lambda request: httpx.Response(429, json=body, headers={"Retry-After": value.encode()})
    )
    client = NodeClient("http://node.test", "t", transport=transport)
    with client as node, pytest.raises(errors.RateLimited) as limited:
        node.tasks()
    wait = limited.value.retry_after_s
    assert wait is None or 0 <= wait <= MAX_RETRY_AFTER_S
    if value.isascii() and value.isdigit():
        assert wait == min(float(value), MAX_RETRY_AFTER_S)
    else:
        assert wait is None


def _answer(app: LimitJsonBodies, content_length: bytes) -> tuple[int, dict[str, object]]:
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/grants",
        "root_path": "",
        "headers": [(b"content-length", content_length)],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"]), json.loads(sent[1]["body"])


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.security
@pytest.mark.parametrize("declared", ["²", "①", "٣", "1e3", "-1", "0x10"])
def test_a_content_length_of_other_digits_is_a_400_not_a_500(declared: str) -> None:
    app = LimitJsonBodies(_ok, limit=1_000, exempt=())
    status, body = _answer(app, declared.encode("utf-8"))
    assert status == 400
    assert body["error"] == {
        "code": "invalid_content_length",
        "message": "Content-Length is a whole number of bytes in ASCII digits",
    }
    assert _answer(app, b"2") == (200, {})
    assert _answer(app, b"1001")[0] == 413


@pytest.mark.parametrize("key", ["²", "٣", "①", "3.0", "03x"])
def test_a_policy_level_in_other_digits_is_refused_clearly(tmp_path: Path, key: str) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({key: {"minResult": 50}}), encoding="utf-8")
    with pytest.raises(PolicyError, match="unknown level"):
        Policies.load(path)


def test_the_log_context_names_a_task_only_in_ascii_digits() -> None:
    seen: list[int | None] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(current_task.get())

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        return None

    middleware = TaskLogContext(record)
    for path in ("/api/v1/tasks/٤١", "/api/v1/tasks/41/result"):
        asyncio.run(middleware({"type": "http", "path": path}, receive, send))
    assert seen == [None, 41]


def test_ascii_number_takes_ascii_digits_below_2_to_the_63_only() -> None:
    assert ascii_number("41") == 41
    assert [ascii_number(text) for text in ("²", "٣", "", "-1", "4 1", str(2**63))] == [None] * 6
    assert ascii_number("12345", max_digits=4) is None
