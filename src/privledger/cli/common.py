"""What the commands that talk to a node share: their options and how a call's answer or error
is printed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from privledger import defaults
from privledger.cli.output import choose_json, fail, show

if TYPE_CHECKING:
    from privledger.config import NodeSettings
    from privledger.sdk import NodeClient

UrlOption = Annotated[
    str,
    typer.Option(
        envvar="PRIVLEDGER_NODE_URL",
        help="Your node, e.g. http://127.0.0.1:8001 (`privledger demo` prints each one's).",
    ),
]
NODE_URL = defaults.NODE_URL  # every --url's default (typer takes a default only after `=`)
TokenOption = Annotated[
    str, typer.Option(envvar="PRIVLEDGER_TOKEN", help="Your API token (`privledger node token`).")
]
# its callback sets the output format, which `show` and `fail` read: the command itself does not
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        callback=choose_json,
        help="Print JSON (as `privledger --output json`); the default is a table on a terminal, "
        "JSON otherwise.",
    ),
]
RpcOption = Annotated[
    str | None,
    typer.Option(envvar="PRIVLEDGER_RPC_URL", help=f"JSON-RPC URL (default {defaults.RPC_URL})."),
]
HomeOption = Annotated[Path, typer.Option(help="The node's home directory (keys, database, data).")]
OrgOption = Annotated[str, typer.Option(help="The organisation's short name, e.g. bank-a.")]


def node_settings(org: str, home: Path, **given: object) -> NodeSettings:
    """The node's settings: ``given`` options (those not ``None``) over the ``PRIVLEDGER_*``
    variables over the defaults."""
    from privledger.config import NodeSettings

    chosen = {name: value for name, value in given.items() if value is not None}
    return NodeSettings(org=org, home=home, **chosen)  # type: ignore[arg-type]


def api_call(action: Callable[[NodeClient], object], url: str, token: str, **shown: Any) -> None:
    """Run one SDK call and print what it returns (``shown``: :func:`show`'s options; ``None``:
    the action printed its own); API errors become a message and exit code 1, not a traceback.
    A task that failed on chain is an error carrying its id, reason and this node's note."""
    from privledger.sdk import NodeClient, NodeUnreachable, PrivledgerError, TaskFailed

    try:
        with NodeClient(url, token) as node:
            printed = action(node)
    except TaskFailed as exc:
        task = exc.task
        fail(
            f"{exc}; the fee was refunded",
            code=exc.code,
            record={
                "taskId": task.task_id,
                "status": task.status,
                "failureReason": exc.reason,
                "localFailure": task.local_failure,
            },
        )
    except NodeUnreachable as exc:
        fail(
            f"{exc}\nYour node's address goes in --url or "
            "PRIVLEDGER_NODE_URL, its token in --token or PRIVLEDGER_TOKEN; `privledger demo` "
            "prints both for each of its organisations.",
            code="unreachable",
        )
    except PrivledgerError as exc:
        fail(str(exc), code=exc.code)
    if printed is not None:
        show(printed, **shown)
