"""The ``privledger`` command line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3 import Web3

from privledger.config import NodeSettings, get_settings

app = typer.Typer(
    help="privledger: privacy computing authorised, recorded and settled on an EVM ledger.",
    no_args_is_help=True,
)
chain_app = typer.Typer(help="Run the local EVM chain.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")
console = Console(stderr=True, soft_wrap=True)

RpcOption = Annotated[str | None, typer.Option(help="JSON-RPC URL (default PRIVLEDGER_RPC_URL).")]


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command("compile")
def compile_command(
    force: Annotated[bool, typer.Option(help="Recompile even if nothing changed.")] = False,
) -> None:
    """Compile the Solidity contracts into build/contracts (cached by source hash)."""
    from privledger.evm.compiler import CompileError, compile_contracts

    settings = get_settings()
    try:
        artifacts = compile_contracts(settings, force=force)
    except CompileError as exc:
        console.print(f"[red]compile failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    for name, artifact in sorted(artifacts.items()):
        size = (len(artifact.deployed_bytecode) - 2) // 2
        console.print(f"{name:<16} {size:>6} bytes  {artifact.compiler_version}")


@chain_app.command("up")
def chain_up(
    port: Annotated[int | None, typer.Option(help="Port (default PRIVLEDGER_CHAIN_PORT).")] = None,
    state: Annotated[
        Path | None, typer.Option(help="State file (default var/chain/state.json).")
    ] = None,
) -> None:
    """Start anvil on 127.0.0.1 with a state file, until Ctrl-C."""
    from privledger.evm.anvil import start_anvil

    settings = get_settings()
    handle = start_anvil(
        settings.chain_dir,
        port=port or settings.chain_port,
        state_file=state or settings.chain_state_file,
    )
    console.print(f"chain up at {handle.rpc_url} (chain id {handle.chain_id}); Ctrl-C stops it")
    try:
        handle.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.close()


def _admin_account(chain_id: int) -> LocalAccount:
    from eth_account import Account

    from privledger.evm.accounts import dev_account

    key = os.environ.get("PRIVLEDGER_ADMIN_KEY")
    if not key:
        return dev_account(0, chain_id)
    try:
        account: LocalAccount = Account.from_key(key)
    except ValueError as exc:
        console.print(f"[red]PRIVLEDGER_ADMIN_KEY is not a private key: {exc}[/red]")
        raise typer.Exit(2) from exc
    return account


@app.command("deploy")
def deploy_command(rpc_url: RpcOption = None) -> None:
    """Deploy the ledger contracts (or reuse the recorded deployment) and print it as JSON.

    Signs with PRIVLEDGER_ADMIN_KEY; on the local development chain the first anvil account is used.
    """
    from privledger.evm.accounts import DevAccountRefused
    from privledger.evm.client import ChainClient
    from privledger.evm.compiler import compile_contracts
    from privledger.evm.deploy import deploy_contracts
    from privledger.evm.errors import ChainError, ErrorDecoder

    settings = get_settings()
    w3 = Web3(Web3.HTTPProvider(rpc_url or settings.rpc_url))
    if not w3.is_connected():
        console.print(f"[red]no chain answers at {rpc_url or settings.rpc_url}[/red]")
        raise typer.Exit(1)
    artifacts = compile_contracts(settings)
    try:
        account = _admin_account(w3.eth.chain_id)
    except DevAccountRefused as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    errors = ErrorDecoder(artifact.abi for artifact in artifacts.values())
    client = ChainClient(w3, account, errors)
    try:
        deployment = deploy_contracts(client, artifacts, settings.deployments_dir)
    except ChainError as exc:
        console.print(f"[red]deploy failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(deployment.to_json(), indent=2, sort_keys=True))


node_app = typer.Typer(help="Run and administer an organisation node.", no_args_is_help=True)
app.add_typer(node_app, name="node")

HomeOption = Annotated[Path, typer.Option(help="The node's home directory (keys, database, data).")]
OrgOption = Annotated[str, typer.Option(help="The organisation's short name, e.g. bank-a.")]


def _node_settings(org: str, home: Path, **extra: object) -> NodeSettings:
    return NodeSettings(org=org, home=home, **extra)  # type: ignore[arg-type]


@node_app.command("init")
def node_init(
    org: OrgOption,
    home: HomeOption,
    key_env: Annotated[
        str, typer.Option(help="Environment variable holding the node account's private key.")
    ] = "PRIVLEDGER_NODE_KEY",
) -> None:
    """Create a node home: encrypted keystore with the node account and the X25519 node key."""
    from privledger.node.context import init_node_home

    key = os.environ.get(key_env)
    if not key:
        console.print(f"[red]set {key_env} to the node account's private key[/red]")
        raise typer.Exit(2)
    try:
        account = init_node_home(_node_settings(org, home), key)
    except ValueError as exc:
        console.print(f"[red]{key_env} is not a private key: {exc}[/red]")
        raise typer.Exit(2) from exc
    typer.echo(json.dumps({"org": org, "home": str(home), "account": account.address}))


@node_app.command("token")
def node_token(
    org: OrgOption,
    home: HomeOption,
    user: Annotated[str, typer.Option(help="User name.")],
    role: Annotated[
        str,
        typer.Option(
            help="org_admin, data_owner, operator or auditor; consortium_admin (onboarding "
            "reviews) for the account holding the consortium-admin role on chain."
        ),
    ],
    address: Annotated[
        str | None, typer.Option(help="The user's account (default: the node account).")
    ] = None,
) -> None:
    """Issue an API token bound to a user and one on-chain role; prints it once."""
    from sqlmodel import Session

    from privledger.api.deps import issue_token
    from privledger.api.routes.onboarding import CONSORTIUM_ADMIN, issue_consortium_admin_token
    from privledger.node.context import NODE_FILE
    from privledger.store.db import make_engine

    settings = _node_settings(org, home)
    account = address or json.loads((home / NODE_FILE).read_text())["account"]
    with Session(make_engine(settings.resolved_database_url)) as session:
        try:
            if role == CONSORTIUM_ADMIN:
                token = issue_consortium_admin_token(session, user_name=user, address=account)
            else:
                token = issue_token(session, user_name=user, address=account, role=role)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    typer.echo(token)


@node_app.command("run")
def node_run(
    org: OrgOption,
    home: HomeOption,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    rpc_url: RpcOption = None,
) -> None:
    """Run the node: API, peer endpoints and worker, until Ctrl-C."""
    from privledger.node.context import NodeSetupError
    from privledger.node.service import serve

    extra: dict[str, object] = {"host": host, "port": port}
    if rpc_url:
        extra["rpc_url"] = rpc_url
    try:
        serve(_node_settings(org, home, **extra))
    except NodeSetupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@node_app.command("host")
def node_host(
    tenant: Annotated[
        list[str],
        typer.Option(help="ORG=HOME of one hosted organisation (a home made by `node init`)."),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    public_url: Annotated[
        str | None,
        typer.Option(help="Base URL peers reach this host at (default http://HOST:PORT)."),
    ] = None,
    rpc_url: RpcOption = None,
) -> None:
    """Host several organisations in one process (tenants): each is served under /t/ORG with
    its own keys, database, tokens and worker."""
    from privledger.node.context import NodeSetupError
    from privledger.node.service import TENANT_PREFIX, serve_tenants

    base = (public_url or f"http://{host}:{port}").rstrip("/")
    tenants = []
    for item in tenant:
        org, sep, home = item.partition("=")
        if not sep or not org or not home:
            console.print(f"[red]--tenant takes ORG=HOME, not {item!r}[/red]")
            raise typer.Exit(2)
        extra: dict[str, object] = {"host": host, "port": port}
        extra["public_url"] = f"{base}{TENANT_PREFIX}/{org}"
        if rpc_url:
            extra["rpc_url"] = rpc_url
        tenants.append(_node_settings(org, Path(home), **extra))
    try:
        serve_tenants(tenants, host=host, port=port)
    except (NodeSetupError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


dataset_app = typer.Typer(help="Datasets on your node (data owner token).", no_args_is_help=True)
grant_app = typer.Typer(help="Grants on your datasets (data owner token).", no_args_is_help=True)
task_app = typer.Typer(help="Tasks through your node (operator token).", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(grant_app, name="grant")
app.add_typer(task_app, name="task")
model_app = typer.Typer(
    help="Trained models: register, list, prediction log.", no_args_is_help=True
)
scenario_app = typer.Typer(help="Generate the data of a worked scenario.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(scenario_app, name="scenario")

UrlOption = Annotated[
    str, typer.Option(envvar="PRIVLEDGER_NODE_URL", help="Your node, e.g. http://127.0.0.1:8001.")
]
TokenOption = Annotated[
    str, typer.Option(envvar="PRIVLEDGER_TOKEN", help="Your API token (`privledger node token`).")
]


def _print_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def _api_call(action: Callable[[Any], object], url: str, token: str) -> None:
    """Run one SDK call; API errors become a message and exit code 1, not a traceback."""
    from privledger.sdk import NodeClient, PrivledgerError

    try:
        with NodeClient(url, token) as node:
            _print_json(action(node))
    except PrivledgerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {url}: {exc}[/red]")
        raise typer.Exit(1) from exc


@dataset_app.command("register")
def dataset_register(
    path: Annotated[Path, typer.Argument(help="A CSV or Parquet file on the node's disk.")],
    name: Annotated[str, typer.Option(help="A short name.")],
    level: Annotated[int, typer.Option(help="Classification level 1 (public) .. 4 (core).")],
    unit_price: Annotated[int, typer.Option(help="Wei per matched row.")] = 0,
    url: UrlOption = "http://127.0.0.1:8000",
    token: TokenOption = "",
) -> None:
    """Register a local file: its commitment, schema hash and row count go on chain."""
    _api_call(
        lambda node: node.register_dataset(
            str(path.resolve()), name, level=level, unit_price=unit_price
        ),
        url,
        token,
    )


@dataset_app.command("list")
def dataset_list(url: UrlOption = "http://127.0.0.1:8000", token: TokenOption = "") -> None:
    """The datasets your node holds."""
    _api_call(lambda node: node.datasets(), url, token)


@model_app.command("register")
def model_register(
    task_id: Annotated[int, typer.Argument(help="The completed horizontal FL task.")],
    name: Annotated[str, typer.Option(help="A short name, e.g. fraud-lr.")],
    unit_price: Annotated[int, typer.Option(help="Wei per predicted row.")] = 0,
    upstream_bps: Annotated[
        int, typer.Option(help="Share of prediction fees passed to the training data owners.")
    ] = 3_000,
    url: UrlOption = "http://127.0.0.1:8000",
    token: TokenOption = "",
) -> None:
    """Register a trained model on chain (data owner token); then grant `fl` use to predict."""
    _api_call(
        lambda node: node.register_model(
            task_id, name, unit_price=unit_price, upstream_bps=upstream_bps
        ),
        url,
        token,
    )


@model_app.command("list")
def model_list(url: UrlOption = "http://127.0.0.1:8000", token: TokenOption = "") -> None:
    """The models your node holds."""
    _api_call(lambda node: node.models(), url, token)


@model_app.command("calls")
def model_calls(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    url: UrlOption = "http://127.0.0.1:8000",
    token: TokenOption = "",
) -> None:
    """Every prediction call of a model, with its anchoring batch (data owner token)."""
    _api_call(lambda node: node.prediction_log(name), url, token)


@scenario_app.command("fraud")
def scenario_fraud(
    out: Annotated[Path, typer.Option(help="Directory for telecom.csv and bank.csv.")],
    customers: Annotated[int, typer.Option(min=10, help="The bank's customers.")] = 3_000,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 0,
) -> None:
    """Write the telecom-fraud data (documented in privledger.scenarios.fraud) and print the
    vertical FL task to submit from the bank's node once both files are registered."""
    from privledger.scenarios import fraud

    data = fraud.generate(out, customers=customers, seed=seed)
    template = fraud.task_body("<bank dataset id>", "<telecom dataset id>", 0, 0)
    _print_json(
        {
            "telecomCsv": str(data.telecom_csv),
            "bankCsv": str(data.bank_csv),
            "commonPeople": data.common,
            "fraudCases": data.fraud_cases,
            "task": {**template, "dealer": "<dealer org id>", "feeWei": "<fee in wei>"},
        }
    )


@grant_app.command("issue")
def grant_issue(
    dataset: Annotated[str, typer.Argument(help="Dataset id (0x...).")],
    grantee: Annotated[int, typer.Option(help="The organisation allowed to use it.")],
    kind: Annotated[list[str], typer.Option(help="psi, pir, stats or fl; repeatable.")],
    uses: Annotated[int, typer.Option(help="At most this many tasks.")] = 10,
    days: Annotated[int, typer.Option(help="Valid for this many days.")] = 30,
    url: UrlOption = "http://127.0.0.1:8000",
    token: TokenOption = "",
) -> None:
    """Grant an organisation the use of a dataset (a signed chain transaction)."""
    _api_call(
        lambda node: node.grant(dataset, grantee, kind, expires_in_s=days * 86_400, max_uses=uses),
        url,
        token,
    )


@grant_app.command("revoke")
def grant_revoke(
    grant_id: Annotated[str, typer.Argument(help="Grant id (0x...).")],
    url: UrlOption = "http://127.0.0.1:8000",
    token: TokenOption = "",
) -> None:
    """Revoke a grant: tasks not yet run under it stop."""
    _api_call(lambda node: node.revoke(grant_id), url, token)


@task_app.command("submit")
def task_submit(
    spec: Annotated[Path, typer.Argument(help="A JSON file with the task (see the API's TaskIn).")],
    wait: Annotated[bool, typer.Option(help="Wait until settled or failed.")] = True,
    url: UrlOption = "http://127.0.0.1:8000",
    token: TokenOption = "",
) -> None:
    """Submit a task and (by default) wait for it, with a progress spinner on stderr."""
    try:
        body = json.loads(spec.read_text())
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot read {spec}: {exc}[/red]")
        raise typer.Exit(2) from exc

    def submit_and_wait(node: Any) -> object:
        task = node.submit(body)
        if not wait:
            return task
        with console.status(f"task {task['taskId']}: waiting for the nodes ..."):
            return node.wait(int(task["taskId"]))

    _api_call(submit_and_wait, url, token)


@task_app.command("status")
def task_status(
    task_id: Annotated[int, typer.Argument(help="Task id.")],
    url: UrlOption = "http://127.0.0.1:8000",
    token: TokenOption = "",
) -> None:
    """The task's on-chain record and timeline, and your node's part in it."""
    _api_call(lambda node: node.task(task_id), url, token)


@task_app.command("result")
def task_result(
    task_id: Annotated[int, typer.Argument(help="Task id.")],
    url: UrlOption = "http://127.0.0.1:8000",
    token: TokenOption = "",
) -> None:
    """The task's output, with the salt that opens its anchored digest."""
    _api_call(lambda node: node.result(task_id), url, token)


@app.command("demo")
def demo_command(
    once: Annotated[
        bool, typer.Option(help="Run the scenario, print a JSON summary, exit.")
    ] = False,
    port: Annotated[
        int | None, typer.Option(help="Chain port (default PRIVLEDGER_CHAIN_PORT).")
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(help="Scenario to run: psi, fraud (repeatable; default: all)."),
    ] = None,
) -> None:
    """Start the local consortium: chain, contracts, organisations; then run the demo scenarios."""
    from privledger.demo import SCENARIOS, run_demo

    chosen = tuple(scenario or SCENARIOS)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        console.print(f"[red]unknown scenario {', '.join(unknown)}[/red]; choose from {SCENARIOS}")
        raise typer.Exit(2)

    def report(summary: dict[str, object]) -> None:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))

    run_demo(
        get_settings(),
        port=port,
        keep_running=not once,
        report=report,
        console=console,
        scenarios=chosen,
    )


@app.command(
    "bench",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def bench_command(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(help="Benchmark name: a script in benchmarks/.")],
) -> None:
    """Run benchmarks/<what>.py; extra flags (--json, --n, ...) are passed to it."""
    script = get_settings().project_root / "benchmarks" / f"{what}.py"
    if not script.is_file():
        available = sorted(p.stem for p in script.parent.glob("*.py") if p.stem != "__init__")
        console.print(f"[red]no benchmark {what!r}[/red]; available: {', '.join(available)}")
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call([sys.executable, str(script), *ctx.args]))


if __name__ == "__main__":
    app()
