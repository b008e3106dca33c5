"""The ``privledger`` command line: one module per group of commands.

Nothing heavy is imported up front (web3, eth-account, numpy, the node, the SDK): each command
imports what it needs when it runs, so ``privledger --help`` and the simple commands start fast.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from privledger.cli import (
    chain,
    components,
    data,
    demo,
    node,
    onboarding,
    pipelines,
    queries,
    tasks,
)
from privledger.cli.choices import Output
from privledger.cli.output import choose, json_chosen, print_error


class _Commands(TyperGroup):
    """The root group: with JSON output, a bad parameter (a wrong choice or value, a missing
    option) is printed as ``{"error": {"code": "usage", ...}}`` on stdout too; click prints its
    message on stderr and exits with 2 as always."""

    def invoke(self, ctx: Any) -> Any:  # click's Context, vendored by typer
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:
            if json_chosen():
                print_error(exc.format_message(), code="usage")
            raise


app = typer.Typer(
    cls=_Commands,
    help="privledger: privacy computing authorised, recorded and settled on an EVM ledger.",
    no_args_is_help=True,
)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
    output: Annotated[
        Output | None,
        typer.Option(
            "--output",
            "-o",
            envvar="PRIVLEDGER_OUTPUT",
            help="How commands print their data (default: a table on a terminal, JSON "
            "otherwise); with json, errors are JSON on stdout too.",
        ),
    ] = None,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    choose(output)


app.command("compile")(chain.compile_command)
app.add_typer(chain.chain_app, name="chain")
app.command("deploy")(chain.deploy_command)
app.add_typer(chain.consortium_app, name="consortium")
app.add_typer(node.node_app, name="node")
app.add_typer(onboarding.onboarding_app, name="onboarding")
app.add_typer(data.dataset_app, name="dataset")
app.add_typer(data.grant_app, name="grant")
app.add_typer(tasks.task_app, name="task")
app.add_typer(components.component_app, name="component")
app.add_typer(pipelines.pipeline_app, name="pipeline")
app.add_typer(tasks.approval_app, name="approval")
app.command("inbox")(tasks.inbox_command)
app.add_typer(queries.query_app, name="query")
app.add_typer(queries.stats_app, name="stats")
app.add_typer(queries.lending_app, name="lending")
app.add_typer(data.model_app, name="model")
app.add_typer(data.scenario_app, name="scenario")
app.command("demo")(demo.demo_command)
app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    demo.bench_command
)

__all__ = ["app"]
