"""The task id on log lines: set by the worker around a task and by requests whose path names a
task, seen by the route's thread and by uvicorn's access line; text or JSON lines."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from privledger.api.metrics import TaskLogContext
from privledger.evm.anvil import free_port
from privledger.observability.logs import (
    ACCESS_LOGGER,
    TEXT_FORMAT,
    JsonFormatter,
    TaskFilter,
    configure_logging,
    server_logging,
    task_context,
)


def _logged(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(TaskFilter())
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, stream


def test_lines_inside_a_task_name_it_and_only_those() -> None:
    logger, stream = _logged(logging.Formatter(TEXT_FORMAT))
    logger.info("before")
    with task_context(41):
        logger.info("running")
        with task_context(7):  # a nested context wins, and the outer one comes back
            logger.info("other")
        logger.info("still")
    logger.info("after")
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "before",
        "running",
        "other",
        "still",
        "after",
    ]
    assert ["task=" in line for line in lines] == [False, True, True, True, False]
    assert " task=41: running" in lines[1] and " task=7: other" in lines[2]


def test_the_task_does_not_leak_into_other_threads() -> None:
    logger, stream = _logged(logging.Formatter(TEXT_FORMAT))
    with task_context(41):
        thread = threading.Thread(target=logger.info, args=("elsewhere",))
        thread.start()
        thread.join()
    assert "task=" not in stream.getvalue()


def test_json_lines() -> None:
    logger, stream = _logged(JsonFormatter())
    with task_context(41):
        logger.warning("ran %d rows", 3)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["task"] == 41 and first["message"] == "ran 3 rows"
    assert first["level"] == "WARNING" and first["time"].endswith("+00:00")
    assert "task" not in second and "ValueError: boom" in second["exception"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter(TEXT_FORMAT))
        self.addFilter(TaskFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def lines() -> Iterator[_Lines]:
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        access = logging.getLogger(ACCESS_LOGGER)  # as uvicorn's config leaves it
        access.setLevel(logging.NOTSET)
        access.propagate = True


@contextmanager
def _serve(access_log: bool) -> Iterator[str]:
    def route(request: Request) -> PlainTextResponse:  # sync: runs in the thread pool
        logging.getLogger("test.route").warning("served %s", request.url.path)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/api/v1/tasks/{task_id:int}/result", route), Route("/x", route)])
    port = free_port()
    config = uvicorn.Config(
        TaskLogContext(app), host="127.0.0.1", port=port, **server_logging(access_log=access_log)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("access_log", [True, False])
def test_a_request_about_a_task_logs_it_in_its_route_and_access_line(
    lines: _Lines, access_log: bool
) -> None:
    with _serve(access_log) as url:
        assert httpx.get(f"{url}/api/v1/tasks/41/result").status_code == 200
        assert httpx.get(f"{url}/x").status_code == 200
    served = [line for line in lines.lines if "test.route" in line]
    assert len(served) == 2
    assert "task=41: served /api/v1/tasks/41/result" in served[0]
    assert "task=" not in served[1]
    access = [line for line in lines.lines if ACCESS_LOGGER in line]
    if access_log:
        assert len(access) == 2, lines.lines
        assert "task=41" in access[0] and "GET /api/v1/tasks/41/result" in access[0]
        assert "task=" not in access[1]
    else:
        assert access == []


@pytest.mark.parametrize("json_lines", [False, True])
def test_configure_logging_formats_every_root_handler(json_lines: bool) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    try:
        configure_logging("info", json_lines=json_lines)
        configure_logging(None, json_lines=json_lines)  # again: one filter, the level kept
        assert root.level == logging.INFO and len(root.handlers[0].filters) == 1
        with task_context(41):
            logging.getLogger("test.configured").info("hello")
        logging.getLogger("test.configured").debug("below the level")
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)  # and the loggers' cached levels with it
    (line,) = stream.getvalue().splitlines()
    if json_lines:
        assert json.loads(line)["task"] == 41
    else:
        assert line.endswith(" INFO test.configured task=41: hello")
