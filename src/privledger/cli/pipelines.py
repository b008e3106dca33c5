"""Pipelines (docs/pipelines.md): run a job file of steps, each a task on chain, and follow it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from privledger.cli.common import NODE_URL, JsonOption, TokenOption, UrlOption, api_call
from privledger.cli.output import console, fail, json_chosen
from privledger.wire.defaults import PIPELINE_PARALLEL

if TYPE_CHECKING:
    from privledger.sdk import NodeClient
    from privledger.sdk.pipeline import StepProgress
    from privledger.wire.pipelines import PipelineOut

pipeline_app = typer.Typer(
    help="Pipelines: jobs whose steps are tasks on chain, one step's aligned rows the next's "
    "input as derived datasets.",
    no_args_is_help=True,
)
OwnerTokenOption = Annotated[
    str,
    typer.Option(
        envvar="PRIVLEDGER_OWNER_TOKEN",
        help="A data owner's token: registers the derived datasets and models of the steps "
        "that make them (the --token is an operator's, which submits the tasks).",
    ),
]
VarOption = Annotated[
    list[str] | None,
    typer.Option(
        "--var",
        help="NAME=VALUE for a ${NAME} of the job file (overrides its vars; a JSON VALUE such "
        'as 5 or ["a","b"] is taken as JSON); repeatable.',
    ),
]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait for each step's task.", min=1)]
ParallelOption = Annotated[
    int,
    typer.Option(
        help="Steps run at once: each starts when the steps it waits for are done.", min=1
    ),
]


@pipeline_app.command("run")
def pipeline_run(
    job_file: Annotated[Path, typer.Argument(help="The job file (JSON): name, vars, steps.")],
    var: VarOption = None,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    owner_token: OwnerTokenOption = "",
    timeout: TimeoutOption = 600.0,
    parallel: ParallelOption = PIPELINE_PARALLEL,
    json_output: JsonOption = False,
) -> None:
    """Record the job on your node and run its steps, each a task on chain, a step as soon as
    those it waits for are done (independent steps at once); a line per step as it goes. A
    failed step stops the run (steps already running finish): fix the cause, then `pipeline
    resume ID`."""
    from pydantic import ValidationError

    from privledger.sdk.pipeline import run_pipeline
    from privledger.wire.pipelines import JobIn

    try:
        job = JobIn.model_validate_json(job_file.read_bytes())
    except OSError as exc:
        fail(f"cannot read {job_file}: {exc.strerror}", code="unreadable")
    except ValidationError as exc:
        fail(f"{job_file} is not a job file: {exc}", code="invalid_job")
    _run(run_pipeline, job, var, url, token, owner_token, timeout, parallel)


@pipeline_app.command("resume")
def pipeline_resume(
    pipeline_id: Annotated[int, typer.Argument(help="The pipeline's id on your node.", min=1)],
    var: VarOption = None,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    owner_token: OwnerTokenOption = "",
    timeout: TimeoutOption = 600.0,
    parallel: ParallelOption = PIPELINE_PARALLEL,
    json_output: JsonOption = False,
) -> None:
    """Run a recorded pipeline again: steps that settled are skipped (their tasks are not
    submitted again), a task still running is followed, a failed step gets a new task."""
    from privledger.sdk.pipeline import resume_pipeline

    _run(resume_pipeline, pipeline_id, var, url, token, owner_token, timeout, parallel)


@pipeline_app.command("show")
def pipeline_show(
    pipeline_id: Annotated[int, typer.Argument(help="The pipeline's id on your node.", min=1)],
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """One pipeline: each step's state, task and derived datasets."""
    api_call(lambda node: _shown(node.pipeline(pipeline_id)), url, token, title="pipeline")


@pipeline_app.command("list")
def pipeline_list(
    url: UrlOption = NODE_URL, token: TokenOption = "", json_output: JsonOption = False
) -> None:
    """The pipelines recorded on your node, newest first."""

    def rows(node: NodeClient) -> object:
        found = node.pipelines()
        if json_chosen():
            return found
        return [
            {
                "id": p.pipeline_id,
                "name": p.name,
                "state": p.state,
                "steps": ", ".join(f"{s.id}:{s.state}" for s in p.steps),
            }
            for p in found
        ]

    api_call(rows, url, token, title="pipelines")


def _run(
    runner: Callable[..., PipelineOut],
    what: object,
    var: list[str] | None,
    url: str,
    token: str,
    owner_token: str,
    timeout: float,
    parallel: int,
) -> None:
    """Run (or resume) ``what`` with ``runner`` of :mod:`privledger.sdk.pipeline`, a line per
    step on stderr, the final record on stdout."""
    variables = _variables(var or [])

    def run(node: NodeClient) -> object:
        with _owner(url, owner_token) as owner:
            done = runner(
                node,
                what,
                owner=owner,
                variables=variables,
                progress=_printer(),
                timeout_s=timeout,
                parallel=parallel,
            )
        return _shown(done)

    api_call(run, url, token, title="pipeline")


def _variables(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; a VALUE that is JSON (a number, a list) is taken as such, any other
    as text."""
    variables: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--var {pair!r}: expected NAME=VALUE", code="invalid_var")
        try:
            variables[name] = json.loads(value)
        except ValueError:
            variables[name] = value
    return variables


class _NoOwner:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _owner(url: str, token: str) -> NodeClient | _NoOwner:
    from privledger.sdk import NodeClient

    return NodeClient(url, token) if token else _NoOwner()


def _printer() -> StepProgress:
    last: dict[str, str] = {}

    def seen(step: str, phase: str, line: str) -> None:
        if last.get(step) != phase:  # one line per change, not per poll
            last[step] = phase
            console.print(f"[bold]{step}[/bold] {phase}: {line}", highlight=False)

    return seen


def _shown(pipeline: PipelineOut) -> object:
    if json_chosen():
        return pipeline
    return [
        {
            "step": step.id,
            "state": step.state,
            "task": step.task_id,
            "attempts": step.attempts,
            "derived": ", ".join(f"{d.org}={d.dataset_id}" for d in step.derived),
            "model": step.model_id or "",
        }
        for step in pipeline.steps
    ]
