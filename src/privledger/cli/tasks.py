"""An analyst's tasks and a data owner's decisions on them: submit, follow, fetch; approvals and
the inbox."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from privledger.cli.choices import PsiOutput, PsiProtocol, TaskProtocol
from privledger.cli.common import NODE_URL, JsonOption, TokenOption, UrlOption, api_call
from privledger.cli.output import console, fail, json_chosen, show
from privledger.cli.progress import following, phase, task_line

if TYPE_CHECKING:
    from privledger.sdk import NodeClient
    from privledger.sdk.bodies import TaskBody
    from privledger.wire.tasks import TaskOut

task_app = typer.Typer(help="Tasks through your node (operator token).", no_args_is_help=True)
approval_app = typer.Typer(
    help="Requests to use your datasets in other organisations' tasks (data owner token).",
    no_args_is_help=True,
)

WaitOption = Annotated[
    bool,
    typer.Option(
        help="Wait until the task is settled or failed (its phases on stderr), then print the "
        "answer; --no-wait prints the submitted task."
    ),
]
TimeoutOption = Annotated[
    float, typer.Option(min=1, help="Give up waiting after this many seconds.")
]
FeeOption = Annotated[
    int,
    typer.Option(min=0, help="Fee in wei escrowed for the data providers (refunded on failure)."),
]
INBOX_COLUMNS = ("kind", "status", "fromOrg", "toOrg", "taskId", "dataset", "projectName")
TASK_COLUMNS = ("taskId", "kind", "status", "phase", "requesterOrg", "participants", "fee")
APPROVAL_COLUMNS = (
    "taskId",
    "dataset",
    "requesterOrg",
    "protocol",
    "feeWei",
    "status",
    "specStatus",
)


def submitted(
    node: NodeClient, body: TaskBody, wait: bool, timeout_s: float, answer: Callable[..., Any]
) -> object:
    """Submit the task ``body``: the submitted task, or with ``wait`` its answer once settled
    (its phases on stderr meanwhile)."""
    from privledger.sdk import TaskTimeout

    task = node.submit(body)
    if not wait:
        return task
    try:
        return following(task.task_id, timeout_s, answer)
    except TaskTimeout as exc:
        fail(
            f"{exc}; `privledger task status {task.task_id}` follows it",
            code="timeout",
            record={"taskId": task.task_id},
        )


def _summary(task: TaskOut) -> dict[str, Any]:
    """A task's row in a table: its phase beside the record, no timeline."""
    record = task.model_dump(mode="json", by_alias=True)
    row = {name: record.get(name) for name in TASK_COLUMNS if name != "phase"}
    return {**row, "phase": phase(task)[1], "waiting": _waiting_for(task)}


def _waiting_for(task: TaskOut) -> str:
    line = task_line(task)
    return line.split(", waiting for ", 1)[1] if ", waiting for " in line else ""


@task_app.command("submit")
def task_submit(
    spec: Annotated[
        Path,
        typer.Argument(
            help="A JSON file with the task; `privledger task template PROTOCOL` prints one."
        ),
    ],
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Submit a task and (by default) wait for it, saying on stderr what it waits for."""
    try:
        body = json.loads(spec.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {spec}: {exc}", code="usage", exit_code=2)
    api_call(lambda node: submitted(node, body, wait, timeout, node.wait), url, token)


@task_app.command("list")
def task_list(
    url: UrlOption = NODE_URL, token: TokenOption = "", json_output: JsonOption = False
) -> None:
    """The tasks your node took part in, newest first: id, protocol, status, phase, and for a
    waiting task whose approval it waits for."""

    def rows(node: NodeClient) -> object:
        return node.tasks() if json_chosen() else [_summary(task) for task in node.tasks()]

    api_call(rows, url, token, title="tasks")


@task_app.command("template")
def task_template(
    protocol: Annotated[TaskProtocol, typer.Argument(help="The task's protocol.")],
) -> None:
    """Print an example task body of PROTOCOL for `privledger task submit` (JSON on stdout);
    what to replace in it goes to stderr."""
    from privledger.api.examples import TASK_EXAMPLES

    example = TASK_EXAMPLES[protocol.value]
    typer.echo(json.dumps(example.body, indent=2, sort_keys=True))
    console.print(f"{example.summary}; replace before submitting:")
    for note in example.stand_ins():
        console.print(f"  {note}")


@task_app.command("psi")
def task_psi(
    mine: Annotated[str, typer.Option(help="Your dataset id (0x...; `privledger dataset list`).")],
    theirs: Annotated[str, typer.Option(help="The partner's dataset id (0x...).")],
    column: Annotated[str, typer.Option(help="The key column, e.g. phone.")],
    their_column: Annotated[
        str | None, typer.Option(help="The partner's key column (default: --column).")
    ] = None,
    protocol: Annotated[
        PsiProtocol, typer.Option(help="kkrt or rr22 for large sets (docs/security-model.md).")
    ] = PsiProtocol.ECDH,
    output: Annotated[
        PsiOutput,
        typer.Option(help="Who learns the result: you (requester), both, or both its size only."),
    ] = PsiOutput.REQUESTER,
    fee_wei: FeeOption = 0,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Private set intersection of your dataset's key column with a partner's: prints the task
    and, when it is settled, the intersection (with --no-wait, only the submitted task)."""
    from privledger.sdk import psi_task

    body = psi_task(
        mine,
        theirs,
        column=column,
        their_column=their_column,
        protocol=protocol.value,
        output=output.value,
        fee_wei=fee_wei,
    )

    def run(node: NodeClient) -> object:
        answer = functools.partial(node.psi_answer, size_only=output is PsiOutput.SIZE)
        return submitted(node, body, wait, timeout, answer)

    api_call(run, url, token)


@task_app.command("status")
def task_status(
    task_id: Annotated[int, typer.Argument(help="Task id.")],
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """The task's on-chain record and timeline, and your node's part in it."""

    def record(node: NodeClient) -> object:
        task = node.task(task_id)
        if json_chosen():
            return task
        return {"phase": phase(task)[1], **task.model_dump(mode="json", by_alias=True)}

    api_call(record, url, token, title=f"task {task_id}")


@task_app.command("result")
def task_result(
    task_id: Annotated[int, typer.Argument(help="Task id.")],
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """The task's output, with the salt that opens its anchored digest."""
    api_call(lambda node: node.result(task_id), url, token, title=f"result of task {task_id}")


@approval_app.command("list")
def approval_list(
    url: UrlOption = NODE_URL, token: TokenOption = "", json_output: JsonOption = False
) -> None:
    """Every approval request on your datasets (a table: one row each; JSON: a pending one with
    the task's spec and your terms, term by term)."""
    api_call(lambda node: node.approvals(), url, token, title="approvals", columns=APPROVAL_COLUMNS)


WaitingTask = Annotated[int, typer.Argument(help="The waiting task.")]
AskedDataset = Annotated[str, typer.Argument(help="Your dataset it asks for (0x...).")]


@approval_app.command("show")
def approval_show(
    task_id: WaitingTask,
    dataset: AskedDataset,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """One request in full: the task's verified spec and, term by term, what it asks beside
    what your grant (or the default terms) allows."""

    def request(node: NodeClient) -> object:
        asked = [
            approval
            for approval in node.approvals()
            if approval.task_id == task_id and approval.dataset.lower() == dataset.lower()
        ]
        if not asked:
            fail(f"no request of task {task_id} for {dataset} on this node", code="not_found")
        if json_chosen():
            return asked[0]
        show(asked[0].model_dump(mode="json", by_alias=True, exclude={"reviews"}))
        for review in asked[0].reviews:
            source = f"grant {review.grant_id} ({review.grant_state})"
            held = source if review.source == "grant" else "the default terms"
            typer.echo(f"\nagainst {held}; broken: {review.violation or 'none'}")
            show(review.terms)
        return None

    api_call(request, url, token)


def _decision_command(decision: Literal["approve", "reject"], doc: str) -> None:
    """Register `privledger approval DECISION TASK_ID DATASET`."""

    def decide(
        task_id: WaitingTask,
        dataset: AskedDataset,
        url: UrlOption = NODE_URL,
        token: TokenOption = "",
        json_output: JsonOption = False,
    ) -> None:
        api_call(lambda node: node.decide(task_id, dataset, decision), url, token)

    decide.__doc__ = doc
    approval_app.command(decision)(decide)


_decision_command("approve", "Approve the task's use of your dataset (signed on chain).")
_decision_command("reject", "Reject the task's use of your dataset (signed on chain): it fails.")


def inbox_command(
    url: UrlOption = NODE_URL, token: TokenOption = "", json_output: JsonOption = False
) -> None:
    """Requests waiting for your organisation's decision: task approvals, project invitations
    (newest first)."""
    api_call(lambda node: node.inbox(), url, token, title="inbox", columns=INBOX_COLUMNS)
