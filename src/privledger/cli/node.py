"""An organisation's node: its home, its API tokens, running it, and what it applies to join
with."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from privledger.cli.choices import TokenRole
from privledger.cli.common import HomeOption, JsonOption, OrgOption, RpcOption, node_settings
from privledger.cli.output import fail, show

if TYPE_CHECKING:
    from privledger.config import NodeSettings

node_app = typer.Typer(help="Run and administer an organisation node.", no_args_is_help=True)

HostOption = Annotated[
    str | None,
    typer.Option(help="Address to listen on (default PRIVLEDGER_HOST, else 127.0.0.1)."),
]
PortOption = Annotated[
    int | None,
    typer.Option(min=1, max=65535, help="Port to listen on (default PRIVLEDGER_PORT, else 8000)."),
]


def _node_account(home: Path) -> str:
    from privledger.node.context import NODE_FILE

    try:
        account: str = json.loads((home / NODE_FILE).read_text())["account"]
    except (OSError, ValueError, KeyError) as exc:
        fail(f"{home} is not a node home (`privledger node init`): {exc}", code="no_node_home")
    return account


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
    json_output: JsonOption = False,
) -> None:
    """Create a node home: encrypted keystore with the node account and the X25519 node key."""
    import secrets

    from privledger.node.context import init_node_home

    key: str | bytes | None = secrets.token_bytes(32) if new_key else os.environ.get(key_env)
    if not key:
        fail(
            f"set {key_env} to the node account's private key, or --new-key",
            code="no_key",
            exit_code=2,
        )
    try:
        account = init_node_home(node_settings(org, home), key)
    except ValueError as exc:
        fail(f"{key_env} is not a private key: {exc}", code="bad_key", exit_code=2)
    show({"org": org, "home": str(home), "account": account.address}, one_line=True)


@node_app.command("identity")
def node_identity(
    org: OrgOption,
    home: HomeOption,
    host: HostOption = None,
    port: PortOption = None,
    json_output: JsonOption = False,
) -> None:
    """What the organisation applies to join with (`privledger onboarding apply` sends it): its
    node account (the org admin), the node's X25519 public key and the endpoint peers will reach
    (PRIVLEDGER_PUBLIC_URL, else http://HOST:PORT), named as the application's fields."""
    show(identity(node_settings(org, home, host=host, port=port)))


def identity(settings: NodeSettings) -> dict[str, str]:
    """The fields of an onboarding application that the node's home and settings give."""
    from privledger.node.keystore import Keystore, KeystoreError, node_public_key

    account = _node_account(settings.home)
    try:
        key = Keystore(settings.keystore_dir, settings.keystore_password).node_key()
    except KeystoreError as exc:
        fail(f"{exc} (PRIVLEDGER_KEYSTORE_PASSWORD)", code="keystore_locked")
    return {
        "orgName": settings.org,
        "adminAddress": account,
        "nodePublicKey": "0x" + node_public_key(key).hex(),
        "nodeEndpoint": settings.endpoint,
    }


@node_app.command("token")
def node_token(
    org: OrgOption,
    home: HomeOption,
    user: Annotated[str, typer.Option(help="User name.")],
    role: Annotated[
        TokenRole,
        typer.Option(
            help="One of the account's roles on chain; consortium_admin (onboarding reviews) "
            "for the account holding the consortium-admin role on chain."
        ),
    ],
    address: Annotated[
        str | None, typer.Option(help="The user's account (default: the node account).")
    ] = None,
    ttl_days: Annotated[
        int, typer.Option(min=1, max=3650, help="Days until the token expires.")
    ] = 90,
) -> None:
    """Issue an API token bound to a user and one on-chain role; prints it once, alone on
    stdout (`export PRIVLEDGER_TOKEN=$(privledger node token ...)`)."""
    from datetime import timedelta

    from sqlmodel import Session

    from privledger.api.deps import bearer_token, issue_token
    from privledger.store.db import make_engine

    settings = node_settings(org, home)
    account = address or _node_account(home)
    ttl = timedelta(days=ttl_days)
    issue = bearer_token if role is TokenRole.CONSORTIUM_ADMIN else issue_token
    with Session(make_engine(settings.resolved_database_url)) as session:
        try:
            token = issue(session, user_name=user, address=account, role=role.value, ttl=ttl)
        except ValueError as exc:
            fail(str(exc), code="not_issued", exit_code=2)
    typer.echo(token)


@node_app.command("tokens")
def node_tokens(org: OrgOption, home: HomeOption, json_output: JsonOption = False) -> None:
    """List the node's API tokens (never their secrets)."""
    from sqlmodel import Session

    from privledger.api.routes.tokens import all_tokens
    from privledger.store.db import make_engine

    settings = node_settings(org, home)
    with Session(make_engine(settings.resolved_database_url)) as session:
        show(all_tokens(session), title="API tokens")


@node_app.command("revoke-token")
def node_revoke_token(
    org: OrgOption,
    home: HomeOption,
    token_id: Annotated[int, typer.Argument(min=1, help="The token's id (`node tokens`).")],
    json_output: JsonOption = False,
) -> None:
    """Revoke one of the node's API tokens for good (refused within 5 s)."""
    from sqlmodel import Session

    from privledger.api.routes.tokens import revoke
    from privledger.store.db import make_engine

    settings = node_settings(org, home)
    with Session(make_engine(settings.resolved_database_url)) as session:
        revoked = revoke(session, token_id)
    if revoked is None:
        fail(f"no token {token_id} on this node", code="not_found")
    show({"id": token_id, "revoked": True}, one_line=True)


@node_app.command("migrate")
def node_migrate(org: OrgOption, home: HomeOption, json_output: JsonOption = False) -> None:
    """Bring the node's database (PRIVLEDGER_DATABASE_URL, else the home's SQLite file) to the
    newest schema and print its revision; `node run` does the same at start."""
    from alembic.migration import MigrationContext

    from privledger.store.db import make_engine

    engine = make_engine(node_settings(org, home).resolved_database_url)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    show({"org": org, "revision": revision}, one_line=True)


@node_app.command("run")
def node_run(
    org: OrgOption,
    home: HomeOption,
    host: HostOption = None,
    port: PortOption = None,
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
    from privledger.api.server import serve
    from privledger.node.context import NodeSetupError

    settings = node_settings(
        org,
        home,
        host=host,
        port=port,
        rpc_url=rpc_url,
        api_workers=api_workers,
        peer_port=peer_port,
    )
    try:
        serve(settings)
    except NodeSetupError as exc:
        fail(str(exc), code="not_started")


@node_app.command("host")
def node_host(
    tenant: Annotated[
        list[str],
        typer.Option(help="ORG=HOME of one hosted organisation (a home made by `node init`)."),
    ],
    host: HostOption = None,
    port: PortOption = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="Base URL peers reach this host at (default PRIVLEDGER_PUBLIC_URL, else "
            "http://HOST:PORT); each tenant is under /t/ORG of it."
        ),
    ] = None,
    rpc_url: RpcOption = None,
) -> None:
    """Host several organisations in one process (tenants): each is served under /t/ORG with
    its own keys, database, tokens and worker."""
    from privledger.api.server import TENANT_PREFIX, serve_tenants
    from privledger.node.context import NodeSetupError

    homes: list[tuple[str, Path]] = []
    for item in tenant:
        org, sep, home = item.partition("=")
        if not sep or not org or not home:
            fail(f"--tenant takes ORG=HOME, not {item!r}", code="usage", exit_code=2)
        homes.append((org, Path(home)))
    # the address and base URL: the options, else PRIVLEDGER_HOST, _PORT, _PUBLIC_URL
    shared = node_settings(*homes[0], host=host, port=port, public_url=public_url, rpc_url=rpc_url)
    base = (shared.public_url or f"http://{shared.host}:{shared.port}").rstrip("/")
    tenants = [
        node_settings(
            org,
            home,
            host=shared.host,
            port=shared.port,
            rpc_url=shared.rpc_url,
            public_url=f"{base}{TENANT_PREFIX}/{org}",
        )
        for org, home in homes
    ]
    try:
        serve_tenants(tenants, host=shared.host, port=shared.port)
    except (NodeSetupError, ValueError) as exc:
        fail(str(exc), code="not_started")
