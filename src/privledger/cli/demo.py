"""What runs on one machine: the demo consortium, and the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Annotated

import typer

from privledger.cli.choices import Scenario
from privledger.cli.output import console, fail


def demo_command(
    once: Annotated[
        bool, typer.Option(help="Run the scenario, print a JSON summary, exit.")
    ] = False,
    port: Annotated[
        int | None, typer.Option(help="Chain port (default PRIVLEDGER_CHAIN_PORT).")
    ] = None,
    scenario: Annotated[
        list[Scenario] | None,
        typer.Option(help="Scenario to run (repeatable; default: all)."),
    ] = None,
    base_port: Annotated[
        int | None,
        typer.Option(
            min=1024,
            max=65_000,
            help="Nodes on fixed ports from this one, in the order bank-a, bank-b, telecom, "
            "regulator, police (8001: 8001..8005); default: free ports.",
        ),
    ] = None,
    reset: Annotated[
        bool,
        typer.Option(
            help="First remove what earlier runs kept (chain state, node homes, demo data, the "
            "deployment file): start on a new chain."
        ),
    ] = False,
) -> None:
    """Start the local consortium: chain, contracts, organisations; then run the demo scenarios.
    The summary is JSON, whatever the output format: a newcomer copies ids out of it."""
    from privledger.config import get_settings
    from privledger.demo import SCENARIOS, PortTaken, reset_demo, run_demo
    from privledger.evm.anvil import AnvilError
    from privledger.shutdown import stop_on_signals

    chosen = tuple(name.value for name in scenario) if scenario else SCENARIOS
    settings = get_settings()
    if reset:
        for path in reset_demo(settings):
            console.print(f"removed {path}")

    def report(summary: dict[str, object]) -> None:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))

    try:
        with stop_on_signals():
            run_demo(
                settings,
                port=port,
                keep_running=not once,
                report=report,
                console=console,
                scenarios=chosen,
                base_port=base_port,
            )
    except KeyboardInterrupt as stopped:
        if once:  # stopped before the summary: not a success
            console.print(f"demo stopped ({stopped or 'SIGINT'})")
            raise typer.Exit(130) from None
    except (AnvilError, PortTaken) as exc:
        fail(f"demo not started: {exc}", code="not_started")


def bench_command(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(help="Benchmark name: a script in benchmarks/.")],
) -> None:
    """Run benchmarks/<what>.py; extra flags (--json, --n, ...) are passed to it."""
    from privledger.config import get_settings

    script = get_settings().project_root / "benchmarks" / f"{what}.py"
    if not script.is_file():
        available = sorted(p.stem for p in script.parent.glob("*.py") if p.stem != "__init__")
        fail(f"no benchmark {what!r}; available: {', '.join(available)}", code="usage", exit_code=2)
    raise typer.Exit(subprocess.call([sys.executable, str(script), *ctx.args]))
