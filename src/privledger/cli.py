"""The ``privledger`` command line."""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3 import Web3

from privledger.config import NodeSettings, get_settings
from privledger.node.spec import PsiOutput, PsiProtocol, TaskProtocol
from privledger.shutdown import stop_on_signals

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
    from privledger.evm.anvil import AnvilError, start_anvil

    settings = get_settings()
    try:
        handle = start_anvil(
            settings.chain_dir,
            port=port or settings.chain_port,
            state_file=state or settings.chain_state_file,
        )
    except AnvilError as exc:
        console.print(f"[red]chain not started:[/red] {exc}")
        raise typer.Exit(1) from exc
    try:
        with stop_on_signals():  # before the line that says so: a Ctrl-C after it stops anvil too
            console.print(
                f"chain up at {handle.rpc_url} (chain id {handle.chain_id}); Ctrl-C stops it"
            )
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


consortium_app = typer.Typer(
    help="Consortium administration, signed with PRIVLEDGER_ADMIN_KEY.", no_args_is_help=True
)
app.add_typer(consortium_app, name="consortium")


@consortium_app.command("admit")
def consortium_admit(
    org: Annotated[str, typer.Option(help="The organisation's name, e.g. bank-a.")],
    account: Annotated[str, typer.Option(help="Its node account (`node init` prints it).")],
    role: Annotated[
        list[str] | None,
        typer.Option(
            help="data_owner, operator, auditor or org_admin (repeatable; default the first "
            "two; an account joining a registered organisation, e.g. a rotated node account, "
            "needs org_admin to act as its node)."
        ),
    ] = None,
    balance_wei: Annotated[
        int, typer.Option(min=0, help="Fund the account up to this balance (task fees).")
    ] = 10**21,
    rpc_url: RpcOption = None,
) -> None:
    """Register an organisation with its node account as admin, grant its roles and fund it;
    steps already done on chain are skipped. Prints the organisation as JSON."""
    from privledger.evm.contracts import Role
    from privledger.evm.errors import ChainError
    from privledger.evm.membership import admit_org

    names = role or ["data_owner", "operator"]
    known = ("DATA_OWNER", "OPERATOR", "AUDITOR", "ORG_ADMIN")
    unknown = [name for name in names if name.upper() not in known]
    if unknown:
        console.print(f"[red]unknown role {', '.join(unknown)}[/red]")
        raise typer.Exit(2)
    roles = Role(0)
    for name in names:
        roles |= Role[name.upper()]
    ledger = _admin_ledger(rpc_url)
    try:
        admitted = admit_org(ledger, name=org, admin=account, roles=roles, balance_wei=balance_wei)
    except (ChainError, ValueError) as exc:
        console.print(f"[red]{org} not admitted:[/red] {exc}")
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(admitted.to_json(), sort_keys=True))


@consortium_app.command("remove")
def consortium_remove(
    account: Annotated[str, typer.Option(help="The account to take every role from.")],
    rpc_url: RpcOption = None,
) -> None:
    """Take every role of an account back, e.g. a node account retired by a key rotation."""
    from privledger.evm.errors import ChainError
    from privledger.evm.membership import remove_account

    try:
        org_id = remove_account(_admin_ledger(rpc_url), account)
    except (ChainError, ValueError) as exc:
        console.print(f"[red]{account} not removed:[/red] {exc}")
        raise typer.Exit(1) from exc
    typer.echo(json.dumps({"account": account, "orgId": org_id, "removed": True}))


def _admin_ledger(rpc_url: str | None) -> Any:
    """The deployed ledger signed by the consortium admin (PRIVLEDGER_ADMIN_KEY)."""
    from privledger.evm.accounts import DevAccountRefused
    from privledger.evm.artifacts import load_artifacts
    from privledger.evm.deploy import load_deployment
    from privledger.evm.ledger import Ledger

    settings = get_settings()
    w3 = Web3(Web3.HTTPProvider(rpc_url or settings.rpc_url))
    deployment = load_deployment(settings.deployments_dir, w3.eth.chain_id)
    if deployment is None:
        console.print("[red]the ledger is not deployed on this chain: `privledger deploy`[/red]")
        raise typer.Exit(1)
    try:
        admin = _admin_account(w3.eth.chain_id)
    except DevAccountRefused as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    return Ledger.connect(w3, load_artifacts(settings.build_dir / "contracts"), deployment, admin)


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
    new_key: Annotated[
        bool,
        typer.Option(
            help="Draw a new node account key here (from `secrets`) instead of reading KEY_ENV: "
            "it never leaves this machine's keystore; give the printed account to the "
            "consortium admin."
        ),
    ] = False,
) -> None:
    """Create a node home: encrypted keystore with the node account and the X25519 node key."""
    import secrets

    from privledger.node.context import init_node_home

    key: str | bytes | None = secrets.token_bytes(32) if new_key else os.environ.get(key_env)
    if not key:
        console.print(f"[red]set {key_env} to the node account's private key, or --new-key[/red]")
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
    ttl_days: Annotated[
        int, typer.Option(min=1, max=3650, help="Days until the token expires.")
    ] = 90,
) -> None:
    """Issue an API token bound to a user and one on-chain role; prints it once."""
    from datetime import timedelta

    from sqlmodel import Session

    from privledger.api.deps import bearer_token, issue_token
    from privledger.api.routes.onboarding import CONSORTIUM_ADMIN
    from privledger.node.context import NODE_FILE
    from privledger.store.db import make_engine

    settings = _node_settings(org, home)
    account = address or json.loads((home / NODE_FILE).read_text())["account"]
    ttl = timedelta(days=ttl_days)
    with Session(make_engine(settings.resolved_database_url)) as session:
        try:
            if role == CONSORTIUM_ADMIN:
                token = bearer_token(session, user_name=user, address=account, role=role, ttl=ttl)
            else:
                token = issue_token(session, user_name=user, address=account, role=role, ttl=ttl)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    typer.echo(token)


@node_app.command("tokens")
def node_tokens(org: OrgOption, home: HomeOption) -> None:
    """List the node's API tokens (never their secrets) as JSON."""
    from sqlmodel import Session

    from privledger.api.routes.tokens import all_tokens
    from privledger.store.db import make_engine

    settings = _node_settings(org, home)
    with Session(make_engine(settings.resolved_database_url)) as session:
        listed = [token.model_dump(mode="json", by_alias=True) for token in all_tokens(session)]
    typer.echo(json.dumps(listed, indent=2))


@node_app.command("revoke-token")
def node_revoke_token(
    org: OrgOption,
    home: HomeOption,
    token_id: Annotated[int, typer.Argument(min=1, help="The token's id (`node tokens`).")],
) -> None:
    """Revoke one of the node's API tokens for good (refused within 5 s)."""
    from sqlmodel import Session

    from privledger.api.routes.tokens import revoke
    from privledger.store.db import make_engine

    settings = _node_settings(org, home)
    with Session(make_engine(settings.resolved_database_url)) as session:
        revoked = revoke(session, token_id)
    if revoked is None:
        console.print(f"[red]no token {token_id} on this node[/red]")
        raise typer.Exit(1)
    typer.echo(json.dumps({"id": token_id, "revoked": True}))


@node_app.command("migrate")
def node_migrate(org: OrgOption, home: HomeOption) -> None:
    """Bring the node's database (PRIVLEDGER_DATABASE_URL, else the home's SQLite file) to the
    newest schema and print its revision; `node run` does the same at start."""
    from alembic.migration import MigrationContext

    from privledger.store.db import make_engine

    engine = make_engine(_node_settings(org, home).resolved_database_url)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    typer.echo(json.dumps({"org": org, "revision": revision}))


@node_app.command("run")
def node_run(
    org: OrgOption,
    home: HomeOption,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default PRIVLEDGER_HOST, else 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Port to listen on (default PRIVLEDGER_PORT, else 8000)."
        ),
    ] = None,
    rpc_url: RpcOption = None,
    api_workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes serving the client API on --port (default PRIVLEDGER_API_WORKERS, "
            "else 1); more than one needs PostgreSQL and a --peer-port.",
        ),
    ] = None,
    peer_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port of the peer endpoint published on chain, served by the process running "
            "the tasks (default PRIVLEDGER_PEER_PORT, else --port).",
        ),
    ] = None,
) -> None:
    """Run the node: API, peer endpoints and worker, until Ctrl-C."""
    from privledger.node.context import NodeSetupError
    from privledger.node.service import serve

    # only what was given: the rest comes from PRIVLEDGER_* variables or the defaults
    given = {
        "host": host,
        "port": port,
        "rpc_url": rpc_url,
        "api_workers": api_workers,
        "peer_port": peer_port,
    }
    extra = {name: value for name, value in given.items() if value is not None}
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

DEFAULT_NODE_URL = "http://127.0.0.1:8000"  # `privledger node run`'s default address
UrlOption = Annotated[
    str, typer.Option(envvar="PRIVLEDGER_NODE_URL", help="Your node, e.g. http://127.0.0.1:8001.")
]
TokenOption = Annotated[
    str, typer.Option(envvar="PRIVLEDGER_TOKEN", help="Your API token (`privledger node token`).")
]


def _print_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def _api_call(action: Callable[[Any], object], url: str, token: str) -> None:
    """Run one SDK call; API errors become a message and exit code 1, not a traceback (a task
    that failed on chain also prints its id, reason and this node's note as JSON)."""
    from privledger.sdk import NodeClient, PrivledgerError, TaskFailed

    try:
        with NodeClient(url, token) as node:
            printed = action(node)
            if printed is not None:  # None: the action printed its own lines
                _print_json(printed)
    except TaskFailed as exc:
        task = exc.task
        _print_json(
            {
                "taskId": task["taskId"],
                "status": task["status"],
                "failureReason": exc.reason,
                "localFailure": task.get("localFailure"),
            }
        )
        console.print(f"[red]{exc}[/red]; the fee was refunded")
        raise typer.Exit(1) from exc
    except PrivledgerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        console.print(
            f"[red]cannot reach {url}: {exc}[/red]\n"
            "Your node's address goes in --url or PRIVLEDGER_NODE_URL, its token in --token or "
            "PRIVLEDGER_TOKEN; `privledger demo` prints both for each of its organisations."
        )
        raise typer.Exit(1) from exc


@dataset_app.command("register")
def dataset_register(
    path: Annotated[
        str,
        typer.Argument(
            help="A CSV or Parquet file on this machine, uploaded; with --on-node, one in the "
            "import/ folder of the organisation's node home, relative to it."
        ),
    ],
    name: Annotated[str, typer.Option(help="A short name.")],
    level: Annotated[int, typer.Option(help="Classification level 1 (public) .. 4 (core).")],
    unit_price: Annotated[int, typer.Option(help="Wei per matched row.")] = 0,
    on_node: Annotated[
        bool, typer.Option("--on-node", help="The file is on the node: send only its path.")
    ] = False,
    url: UrlOption = DEFAULT_NODE_URL,
    token: TokenOption = "",
) -> None:
    """Register a dataset: its commitment, schema hash and row count go on chain, a copy stays
    on the node."""
    if not on_node and not Path(path).is_file():
        console.print(f"[red]no file {path} here (one on the node takes --on-node)[/red]")
        raise typer.Exit(2)
    _api_call(
        lambda node: (
            node.register_dataset(path, name, level=level, unit_price=unit_price)
            if on_node
            else node.register_file(Path(path), name, level=level, unit_price=unit_price)
        ),
        url,
        token,
    )


@dataset_app.command("list")
def dataset_list(url: UrlOption = DEFAULT_NODE_URL, token: TokenOption = "") -> None:
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
    url: UrlOption = DEFAULT_NODE_URL,
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
def model_list(url: UrlOption = DEFAULT_NODE_URL, token: TokenOption = "") -> None:
    """The models your node holds."""
    _api_call(lambda node: node.models(), url, token)


@model_app.command("calls")
def model_calls(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    url: UrlOption = DEFAULT_NODE_URL,
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
    url: UrlOption = DEFAULT_NODE_URL,
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
    url: UrlOption = DEFAULT_NODE_URL,
    token: TokenOption = "",
) -> None:
    """Revoke a grant: tasks not yet run under it stop."""
    _api_call(lambda node: node.revoke(grant_id), url, token)


@task_app.command("submit")
def task_submit(
    spec: Annotated[
        Path,
        typer.Argument(
            help="A JSON file with the task; `privledger task template PROTOCOL` prints one."
        ),
    ],
    wait: Annotated[bool, typer.Option(help="Wait until settled or failed.")] = True,
    url: UrlOption = DEFAULT_NODE_URL,
    token: TokenOption = "",
) -> None:
    """Submit a task and (by default) wait for it, saying on stderr what it waits for."""
    try:
        body = json.loads(spec.read_text())
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot read {spec}: {exc}[/red]")
        raise typer.Exit(2) from exc

    def submit_and_wait(node: Any) -> object:
        task = node.submit(body)
        if not wait:
            return task
        return _waiting(node, int(task["taskId"]), 600.0, node.wait)

    _api_call(submit_and_wait, url, token)


@task_app.command("list")
def task_list(url: UrlOption = DEFAULT_NODE_URL, token: TokenOption = "") -> None:
    """The tasks your node took part in, newest first: one line each (id, protocol, status)."""
    from privledger.sdk import NodeClient

    def lines(node: NodeClient) -> None:
        for task in node.tasks():
            typer.echo(_task_line(task))

    _api_call(lines, url, token)


@task_app.command("template")
def task_template(
    protocol: Annotated[TaskProtocol, typer.Argument(help="The task's protocol.")],
) -> None:
    """Print an example task body of PROTOCOL for `privledger task submit` (stdout); what to
    replace in it goes to stderr."""
    from privledger.api.examples import TASK_EXAMPLES

    example = TASK_EXAMPLES[protocol]
    _print_json(example.body)
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
        PsiProtocol, typer.Option(help="ecdh; kkrt for large sets (see docs/security-model.md).")
    ] = "ecdh",
    output: Annotated[
        PsiOutput,
        typer.Option(help="Who learns the result: you (requester), both, or both its size only."),
    ] = "requester",
    fee_wei: FeeOption = 0,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    url: UrlOption = DEFAULT_NODE_URL,
    token: TokenOption = "",
) -> None:
    """Private set intersection of your dataset's key column with a partner's: prints the task
    and, when it is settled, the intersection (with --no-wait, only the submitted task)."""
    from privledger.sdk import psi_task

    body = psi_task(
        mine,
        theirs,
        column=column,
        their_column=their_column,
        protocol=protocol,
        output=output,
        fee_wei=fee_wei,
    )

    def run(node: Any) -> object:
        answer = functools.partial(node.psi_answer, size_only=output == "size")
        return _submitted(node, body, wait, timeout, answer)

    _api_call(run, url, token)


@task_app.command("status")
def task_status(
    task_id: Annotated[int, typer.Argument(help="Task id.")],
    url: UrlOption = DEFAULT_NODE_URL,
    token: TokenOption = "",
) -> None:
    """The task's on-chain record and timeline, and your node's part in it."""
    _api_call(lambda node: node.task(task_id), url, token)


@task_app.command("result")
def task_result(
    task_id: Annotated[int, typer.Argument(help="Task id.")],
    url: UrlOption = DEFAULT_NODE_URL,
    token: TokenOption = "",
) -> None:
    """The task's output, with the salt that opens its anchored digest."""
    _api_call(lambda node: node.result(task_id), url, token)


approval_app = typer.Typer(
    help="Requests to use your datasets in other organisations' tasks (data owner token).",
    no_args_is_help=True,
)
app.add_typer(approval_app, name="approval")


@approval_app.command("list")
def approval_list(url: UrlOption = DEFAULT_NODE_URL, token: TokenOption = "") -> None:
    """Every approval request on your datasets; a pending one with the task's spec and your
    terms, term by term (JSON)."""
    _api_call(lambda node: node.approvals(), url, token)


WaitingTask = Annotated[int, typer.Argument(help="The waiting task.")]
AskedDataset = Annotated[str, typer.Argument(help="Your dataset it asks for (0x...).")]


def _decision_command(decision: Literal["approve", "reject"], doc: str) -> None:
    """Register `privledger approval DECISION TASK_ID DATASET`."""

    def decide(
        task_id: WaitingTask,
        dataset: AskedDataset,
        url: UrlOption = DEFAULT_NODE_URL,
        token: TokenOption = "",
    ) -> None:
        _api_call(lambda node: node.decide(task_id, dataset, decision), url, token)

    decide.__doc__ = doc
    approval_app.command(decision)(decide)


_decision_command("approve", "Approve the task's use of your dataset (signed on chain).")
_decision_command("reject", "Reject the task's use of your dataset (signed on chain): it fails.")


@app.command("inbox")
def inbox_command(url: UrlOption = DEFAULT_NODE_URL, token: TokenOption = "") -> None:
    """Requests waiting for your organisation's decision: task approvals, project invitations
    (JSON, newest first)."""
    _api_call(lambda node: node.inbox(), url, token)


query_app = typer.Typer(
    help="Anonymous query (keyword PIR) of another organisation's dataset (operator token).",
    no_args_is_help=True,
)
stats_app = typer.Typer(
    help="Joint statistics over several organisations' columns (operator token).",
    no_args_is_help=True,
)
lending_app = typer.Typer(
    help="Multi-lending check: one customer's loans across other banks (operator token).",
    no_args_is_help=True,
)
app.add_typer(query_app, name="query")
app.add_typer(stats_app, name="stats")
app.add_typer(lending_app, name="lending")

WaitOption = Annotated[
    bool,
    typer.Option(
        help="Wait until the task is settled or failed (a spinner on stderr), then print the "
        "answer; --no-wait prints the submitted task."
    ),
]
TimeoutOption = Annotated[float, typer.Option(help="Give up waiting after this many seconds.")]
FeeOption = Annotated[
    int,
    typer.Option(min=0, help="Fee in wei escrowed for the data providers (refunded on failure)."),
]
DealerOption = Annotated[
    int,
    typer.Option(
        help="Org id of the dealer: holds none of the inputs (in the demo, the regulator)."
    ),
]
OwnerTokenOption = Annotated[
    str,
    typer.Option(
        envvar="PRIVLEDGER_OWNER_TOKEN",
        help="A data owner token of your node: needed to register the one-off query dataset "
        "(level 4, free) behind --key / --customer; the node must run on this machine.",
    ),
]


def _waiting(node: Any, task_id: int, timeout_s: float, answer: Callable[..., Any]) -> Any:
    """``answer(task_id, ...)``, saying on stderr what the task waits for at each change (a line
    that stays), with a spinner counting the seconds."""
    started = time.monotonic()
    said = ""
    with console.status(f"task {task_id}: submitted") as status:

        def progress(task: dict[str, Any]) -> None:
            nonlocal said
            line = _task_line(task)
            if line != said:
                console.print(line, highlight=False)
                said = line
            status.update(f"{line} {time.monotonic() - started:.0f} s")

        return answer(task_id, timeout_s=timeout_s, progress=progress)


def _task_line(task: dict[str, Any]) -> str:
    """A task's state in one line: a task waiting for approvals names the datasets and how
    their owners decide."""
    events = task["timeline"]
    decisions = ("InputApproved", "InputRejected")
    decided = {event["args"]["datasetId"] for event in events if event["event"] in decisions}
    pending = [
        event["args"]["datasetId"]
        for event in events
        if event["event"] == "ApprovalRequested" and event["args"]["datasetId"] not in decided
    ]
    head = f"task {task['taskId']} ({task['kind']}): {task['status']}"
    if task["status"] == "submitted" and pending:
        return (
            f"{head}, waiting for the owners' approval of {', '.join(pending)} (the owner runs "
            f"`privledger approval approve {task['taskId']} <dataset>`, or its workflow console)"
        )
    state = task.get("localState")
    return f"{head}{f' (this node: {state})' if state else ''}"


def _submitted(
    node: Any, body: dict[str, Any], wait: bool, timeout_s: float, answer: Callable[..., Any]
) -> dict[str, Any]:
    """Submit the task ``body``: the submitted task, or with ``wait`` its answer as JSON."""
    task: dict[str, Any] = node.submit(body)
    if not wait:
        return task
    result: dict[str, Any] = _waiting(node, int(task["taskId"]), timeout_s, answer).to_json()
    return result


def _one_off_rows(
    url: str, owner_token: str, columns: list[str], rows: list[list[object]], name: str
) -> str:
    """Register the requester's own rows (keys, a customer) as a level-4 dataset, named after
    their hash, unless the node holds it already (the same query again adds no dataset); its
    id. The name stays on the node: the chain records no dataset names."""
    import hashlib

    from privledger.sdk import NodeClient

    if not owner_token:
        console.print(
            "[red]--key / --customer need --owner-token (or PRIVLEDGER_OWNER_TOKEN)[/red]"
        )
        raise typer.Exit(2)
    content = json.dumps([columns, rows], sort_keys=True).encode()
    named = f"{name}-{hashlib.sha256(content).hexdigest()[:16]}"
    with NodeClient(url, owner_token) as owner:
        for held in owner.datasets():
            if held["name"] == named and not held["retired"]:
                return str(held["datasetId"])
        dataset = owner.register_rows(columns, rows, name=named)
    return str(dataset["datasetId"])


@query_app.command("pir")
def query_pir(
    dataset: Annotated[str, typer.Option(help="The holder's dataset id (0x...).")],
    column: Annotated[str, typer.Option(help="The holder's key column, e.g. phone.")],
    value_column: Annotated[str, typer.Option(help="The holder's column to retrieve.")],
    key: Annotated[
        list[str] | None,
        typer.Option(help="A key to look up (repeatable); registered as a one-off dataset."),
    ] = None,
    keys: Annotated[
        str | None, typer.Option(help="Instead of --key: your dataset holding the keys.")
    ] = None,
    keys_column: Annotated[
        str | None, typer.Option(help="The key column of --keys (default: --column).")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="pir: the holder learns nothing about the keys; bucket: cheaper, k-anonymous "
            "only (the holder learns a bucket of ~64 keys each key is in)."
        ),
    ] = "pir",
    fee_wei: FeeOption = 0,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    owner_token: OwnerTokenOption = "",
    url: UrlOption = DEFAULT_NODE_URL,
    token: TokenOption = "",
) -> None:
    """Look keys up in another organisation's dataset without revealing them (keyword PIR).

    Prints {"values": {key: value or null}, ...}; the holder is paid per key asked.
    """
    from privledger.sdk import pir_task

    if (keys is None) == (not key):
        console.print("[red]give either --key (one or more) or --keys DATASET[/red]")
        raise typer.Exit(2)
    if mode not in ("pir", "bucket"):
        console.print(f"[red]--mode is pir or bucket, not {mode!r}[/red]")
        raise typer.Exit(2)

    def run(node: Any) -> object:
        key_column = keys_column or column
        mine = keys
        if mine is None:
            rows: list[list[object]] = [[value] for value in dict.fromkeys(key or [])]
            mine = _one_off_rows(url, owner_token, [key_column], rows, "pir-keys")
        body = pir_task(
            dataset,
            column=column,
            value_column=value_column,
            keys_dataset=mine,
            keys_column=key_column,
            mode="bucket" if mode == "bucket" else "pir",  # checked above
            fee_wei=fee_wei,
        )
        return _submitted(node, body, wait, timeout, node.pir_answer)

    _api_call(run, url, token)


@stats_app.command("run")
def stats_run(
    dataset: Annotated[
        list[str], typer.Option(help="An input dataset id (repeatable; one must be yours).")
    ],
    column: Annotated[
        list[str], typer.Option(help="The numeric column: once for all inputs, or per --dataset.")
    ],
    dealer: DealerOption,
    op: Annotated[
        list[str] | None,
        typer.Option(
            help="count, sum, mean, variance or histogram (repeatable; default: all given). "
            "Picks what is printed: the task releases count, sum, mean and variance (and the "
            "histogram with --edges) to you."
        ),
    ] = None,
    edges: Annotated[
        str | None, typer.Option(help="Histogram bin edges, increasing: e.g. 0,1000,5000,1e6.")
    ] = None,
    frac_bits: Annotated[
        int,
        typer.Option(min=0, max=24, help="Fixed-point fractional bits: fewer bits, larger values."),
    ] = 16,
    fee_wei: FeeOption = 0,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    url: UrlOption = DEFAULT_NODE_URL,
    token: TokenOption = "",
) -> None:
    """Count, sum, mean, variance and histogram of a column across organisations, by secret
    sharing: nobody sees another's rows; only you get the result, and only when the group is at
    least the inputs' minimum size (else "suppressed": true)."""
    from privledger.sdk import stats_task
    from privledger.sdk.client import STATS_OPS

    chosen = list(dict.fromkeys(op or [o for o in STATS_OPS if o != "histogram" or edges]))
    unknown = [o for o in chosen if o not in STATS_OPS]
    if unknown:
        console.print(f"[red]unknown --op {unknown[0]!r}[/red]; choose from {', '.join(STATS_OPS)}")
        raise typer.Exit(2)
    if "histogram" in chosen and not edges:
        console.print("[red]--op histogram needs --edges[/red]")
        raise typer.Exit(2)
    if len(column) not in (1, len(dataset)):
        console.print("[red]give --column once, or once per --dataset[/red]")
        raise typer.Exit(2)
    try:
        bins = [float(edge) for edge in edges.split(",")] if edges else None
    except ValueError as exc:
        console.print(f"[red]--edges: {exc}[/red]")
        raise typer.Exit(2) from exc

    def run(node: Any) -> object:
        body = stats_task(
            dataset,
            column=column[0] if len(column) == 1 else column,
            dealer=dealer,
            histogram_edges=bins,
            frac_bits=frac_bits,
            fee_wei=fee_wei,
        )
        answer = _submitted(node, body, wait, timeout, node.stats_answer)
        if not wait:
            return answer  # the submitted task
        if bins is not None and answer.get("histogram") and answer.get("count") is not None:
            answer["notInBins"] = _not_in_bins(answer["count"], answer["histogram"], bins)
        hidden = [o for o in STATS_OPS if o not in chosen]
        return {name: value for name, value in answer.items() if name not in hidden}

    _api_call(run, url, token)


def _not_in_bins(count: int, histogram: list[int | None], edges: list[float]) -> int:
    """How many of the ``count`` values the histogram's bins do not show, said on stderr: the
    values outside the edges, and those of bins withheld (``null``) as below the group size."""
    unbinned = count - sum(bin_count or 0 for bin_count in histogram)
    if unbinned:
        withheld = " or in withheld bins (null: empty or below the group size)"
        console.print(
            f"{unbinned} of {count} values fall outside the edges [{edges[0]:g}, {edges[-1]:g}]"
            f"{withheld if None in histogram else ''}; widen --edges to bin them"
        )
    return unbinned


@lending_app.command("check")
def lending_check(
    bank: Annotated[list[str], typer.Option(help="Another bank's loan dataset (repeatable).")],
    dealer: DealerOption,
    customer: Annotated[
        str | None,
        typer.Option(help="The customer id; registered as a one-off dataset of yours."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=0, help="Answer only whether the total exceeds this (equal does not exceed)."
        ),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(help="Instead of --customer: your dataset holding the customer (one row)."),
    ] = None,
    exceeds: Annotated[
        bool, typer.Option(help="With --query: compare with its --limit-column instead.")
    ] = False,
    customer_column: Annotated[str, typer.Option(help="Customer column of --query.")] = "customer",
    limit_column: Annotated[str, typer.Option(help="Limit column of --query.")] = "limit",
    bank_customer_column: Annotated[
        str, typer.Option(help="Customer column of the banks' datasets.")
    ] = "customer",
    amount_column: Annotated[
        str, typer.Option(help="Amount column of the banks' datasets (integer minor units).")
    ] = "amount",
    fee_wei: FeeOption = 0,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    owner_token: OwnerTokenOption = "",
    url: UrlOption = DEFAULT_NODE_URL,
    token: TokenOption = "",
) -> None:
    """One customer's total loans at the other banks -- or, with a limit, only whether it
    exceeds it -- without revealing the customer to them or any bank's amount to you."""
    from privledger.sdk import lending_task

    if (query is None) == (customer is None):
        console.print("[red]give either --customer or --query DATASET[/red]")
        raise typer.Exit(2)
    if query is None and exceeds:
        console.print("[red]--exceeds goes with --query; with --customer give --limit[/red]")
        raise typer.Exit(2)
    if query is not None and limit is not None:
        console.print("[red]--limit goes with --customer; with --query use --exceeds[/red]")
        raise typer.Exit(2)

    def run(node: Any) -> object:
        mine = query
        if mine is None:
            columns = [customer_column] + ([limit_column] if limit is not None else [])
            row: list[object] = [customer] + ([limit] if limit is not None else [])
            mine = _one_off_rows(url, owner_token, columns, [row], "lending-query")
        body = lending_task(
            mine,
            banks=bank,
            dealer=dealer,
            customer_column=customer_column,
            limit_column=limit_column if exceeds or limit is not None else None,
            bank_customer_column=bank_customer_column,
            amount_column=amount_column,
            fee_wei=fee_wei,
        )
        return _submitted(node, body, wait, timeout, node.lending_answer)

    _api_call(run, url, token)


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
    """Start the local consortium: chain, contracts, organisations; then run the demo scenarios."""
    from privledger.demo import SCENARIOS, PortTaken, reset_demo, run_demo

    chosen = tuple(scenario or SCENARIOS)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        console.print(f"[red]unknown scenario {', '.join(unknown)}[/red]; choose from {SCENARIOS}")
        raise typer.Exit(2)
    settings = get_settings()
    if reset:
        for path in reset_demo(settings):
            console.print(f"removed {path}")

    def report(summary: dict[str, object]) -> None:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))

    from privledger.evm.anvil import AnvilError

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
        console.print(f"[red]demo not started:[/red] {exc}")
        raise typer.Exit(1) from exc


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
