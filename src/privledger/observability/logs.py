"""Log lines that name the task they are about, as text or as JSON.

While a worker thread runs a task, and while an API request acts on one, :func:`task_context`
holds the task's id; :class:`TaskFilter` writes it into every record logged meanwhile, so
``grep 'task=41 '`` across the logs of every node that took part follows task 41. The id travels in
a :mod:`contextvars` variable: set in a request's coroutine, it is seen by the route's thread and
by uvicorn's access line of that request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal, TypedDict

LogLevel = Literal["debug", "info", "warning", "error"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(task)s: %(message)s"
ACCESS_LOGGER = "uvicorn.access"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", ACCESS_LOGGER, "uvicorn.asgi")

current_task: ContextVar[int | None] = ContextVar("privledger_task", default=None)


@contextmanager
def task_context(task_id: int) -> Iterator[None]:
    """Log lines written inside the block carry ``task=<task_id>``."""
    token = current_task.set(task_id)
    try:
        yield
    finally:
        current_task.reset(token)


class TaskFilter(logging.Filter):
    """Adds ``task_id`` (an int or None) and ``task`` (`` task=41`` or empty, for text formats)
    to every record; filters nothing out."""

    def filter(self, record: logging.LogRecord) -> bool:
        task_id = current_task.get()
        record.task_id = task_id
        record.task = "" if task_id is None else f" task={task_id}"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and the task and the
    exception when there are."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        task_id = getattr(record, "task_id", None)
        if task_id is not None:
            line["task"] = task_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: LogLevel | None, *, json_lines: bool = False) -> None:
    """Log at ``level`` (None: the level already set, e.g. by the command line's ``-v``) through
    the root logger's handlers, each formatting as text with the task or as JSON lines."""
    root = logging.getLogger()
    if level is not None:
        root.setLevel(level.upper())
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
        if not any(isinstance(found, TaskFilter) for found in handler.filters):
            handler.addFilter(TaskFilter())


class ServerLogging(TypedDict):
    log_config: None
    log_level: None
    access_log: bool


def server_logging(*, access_log: bool) -> ServerLogging:
    """uvicorn's logging options: its loggers write through the root logger's handlers (the
    node's format), and each request is logged (at INFO, whatever the node's level) only with
    ``access_log``."""
    for name in UVICORN_LOGGERS:  # as if no uvicorn had configured them before in this process
        found = logging.getLogger(name)
        found.handlers, found.propagate = [], True
        found.setLevel(logging.NOTSET)
    if access_log:
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    return ServerLogging(log_config=None, log_level=None, access_log=access_log)
