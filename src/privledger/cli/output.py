"""What a command prints and how: tables for people, JSON for programs, errors in either.

The format is ``--output table|json`` (before the command, or ``PRIVLEDGER_OUTPUT``), or a
command's ``--json``; without either, a table when stdout is a terminal and JSON when it is not, so
scripts that read the output keep getting JSON. Data goes to stdout; messages, progress and
errors to stderr. An error with JSON output also goes to stdout as ``{"error": {"code",
"message"}}``, and the exit code is not zero.

A table shows names where the API sends numbers (roles, task statuses, failure reasons, kinds),
ISO times (UTC) where it sends Unix timestamps, JSON held in a string as what it holds, and the
first items of a long list (an intersection) with how many more there are; JSON output is the API's
own, unchanged and complete.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from privledger.cli.choices import FAILURE_REASONS, KIND_BITS, ROLE_BITS, TASK_STATUSES, Output

console = Console(stderr=True, soft_wrap=True)
"""Messages, progress and errors (stderr)."""

_chosen: Output | None = None
LIST_SHOWN = 20  # a table shows this many items of a list (an intersection, a result's items)
TIMESTAMP_KEYS = {"expiry", "deadline", "time", "timestamp", "validUntil", "notBefore"}


def choose(output: Output | None) -> None:
    """The format for this run (``None``: by whether stdout is a terminal)."""
    global _chosen  # one command per process (and per CliRunner invocation, which resets it)
    _chosen = output


def choose_json(value: bool) -> bool:
    """A command's ``--json`` (an option callback): JSON for this run."""
    if value:
        choose(Output.JSON)
    return value


def json_chosen() -> bool:
    if _chosen is not None:
        return _chosen is Output.JSON
    return not sys.stdout.isatty()


def jsonable(value: object) -> Any:
    """``value`` as plain JSON values: pydantic models by their aliases, the SDK's answers by
    their ``to_json``, dataclasses by their fields."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    if hasattr(value, "to_json"):
        return jsonable(value.to_json())
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def show(
    value: object,
    *,
    title: str | None = None,
    columns: Iterable[str] | None = None,
    one_line: bool = False,
) -> None:
    """Print a command's data on stdout: JSON, or a table (``columns``, when given, picks and
    orders a list's columns). ``one_line``: JSON on one line, for the administrative steps whose
    output deployment logs keep and scripts read line by line (deploy/deployer.sh's admissions)."""
    data = jsonable(value)
    if json_chosen():
        typer.echo(json.dumps(data, sort_keys=True, indent=None if one_line else 2))
        return
    stdout = Console(soft_wrap=False)
    for table in tables(data, title=title, columns=list(columns) if columns else None):
        stdout.print(table)


def fail(
    message: str, *, code: str, exit_code: int = 1, record: Mapping[str, object] | None = None
) -> NoReturn:
    """Stop the command: ``message`` on stderr; with JSON output also ``{"error": {"code",
    "message"}}`` on stdout, beside the fields of ``record`` (what failed: a task's id, status and
    reason), which a table shows on stdout."""
    if json_chosen():
        print_error(message, code=code, record=record)
    elif record:
        show(record)
    console.print(f"[red]{escape(message)}[/red]", highlight=False)
    raise typer.Exit(exit_code)


def print_error(message: str, *, code: str, record: Mapping[str, object] | None = None) -> None:
    """``{"error": {"code", "message"}, **record}`` on stdout."""
    error = {"error": {"code": code, "message": message}, **jsonable(record or {})}
    typer.echo(json.dumps(error, indent=2, sort_keys=True))


def tables(data: Any, *, title: str | None = None, columns: list[str] | None = None) -> list[Table]:
    """A list of records as one table; a record as a field/value table, followed by a table for
    each of its fields that is a list of records (a task's timeline)."""
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return [_rows(data, title=title, columns=columns)]
    if not isinstance(data, dict):
        table = Table(title=title, show_header=False)
        table.add_column()
        for item in data if isinstance(data, list) else [data]:
            table.add_row(escape(_cell("", item)))
        return [table]
    fields = Table(title=title, show_header=False, box=None, padding=(0, 2, 0, 0))
    fields.add_column(style="bold")
    fields.add_column(overflow="fold")
    nested: list[Table] = []
    for key, item in data.items():
        if isinstance(item, list) and item and all(isinstance(row, dict) for row in item):
            nested.append(_rows(item, title=key))
        else:
            fields.add_row(key, escape(_cell(key, item)))
    return [fields, *nested]


def _rows(
    records: list[dict[str, Any]], *, title: str | None, columns: list[str] | None = None
) -> Table:
    names = columns or list(dict.fromkeys(key for record in records for key in record))
    table = Table(title=title)
    for name in names:
        table.add_column(name, overflow="fold")
    for record in records:
        table.add_row(*(escape(_cell(name, record.get(name))) for name in names))
    if not records:
        table.caption = "none"
    return table


def _cell(key: str, value: Any) -> str:
    """One value as a table shows it, named by its field ``key``."""
    value = _decoded(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return _named(key, value)
    if isinstance(value, dict):
        lines = (f"{name}: {_cell(name, item)}" for name, item in value.items())
        return "\n".join(line.replace("\n", "\n  ") for line in lines)  # nested: indented
    if isinstance(value, list):
        if value and all(isinstance(item, dict) for item in value):
            return "\n\n".join(_cell(key, item) for item in value)
        shown = ", ".join(_cell(key, item) for item in value[:LIST_SHOWN])
        more = len(value) - LIST_SHOWN
        return f"{shown}, … {more} more (--json prints all)" if more > 0 else shown
    return str(value)


def _named(key: str, value: int) -> str:
    if key in TIMESTAMP_KEYS and value > 0:
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    if key in ("roles", "role"):
        return "+".join(role for role, bit in ROLE_BITS.items() if value & bit) or "none"
    if key == "status" and 0 <= value < len(TASK_STATUSES):
        return TASK_STATUSES[value]
    if key in ("failureReason", "reasonCode") and 0 <= value < len(FAILURE_REASONS):
        return FAILURE_REASONS[value] or "-"
    if key in ("kind", "kinds"):
        return "+".join(kind for kind, bit in KIND_BITS.items() if value & bit) or str(value)
    return str(value)


def _decoded(value: Any) -> Any:
    """The JSON a string holds, if it holds an object or a list; else the value."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
