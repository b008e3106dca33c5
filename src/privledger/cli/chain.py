"""The chain and the consortium: compile, run the local chain, deploy, admit organisations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from privledger.cli.choices import ROLE_BITS, ChainRole
from privledger.cli.common import JsonOption, RpcOption
from privledger.cli.output import console, fail, show

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

chain_app = typer.Typer(help="Run the local EVM chain.", no_args_is_help=True)
consortium_app = typer.Typer(
    help="Consortium administration, signed with PRIVLEDGER_ADMIN_KEY.", no_args_is_help=True
)


def compile_command(
    force: Annotated[bool, typer.Option(help="Recompile even if nothing changed.")] = False,
) -> None:
    """Compile the Solidity contracts into build/contracts (cached by source hash)."""
    from privledger.config import get_settings
    from privledger.evm.compiler import CompileError, compile_contracts

    try:
        artifacts = compile_contracts(get_settings(), force=force)
    except CompileError as exc:
        fail(f"compile failed: {exc}", code="compile_failed")
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
    from privledger.config import get_settings
    from privledger.evm.anvil import AnvilError, start_anvil
    from privledger.shutdown import stop_on_signals

    settings = get_settings()
    try:
        handle = start_anvil(
            settings.chain_dir,
            port=port or settings.chain_port,
            state_file=state or settings.chain_state_file,
        )
    except AnvilError as exc:
        fail(f"chain not started: {exc}", code="chain_not_started")
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


def admin_account(chain_id: int) -> LocalAccount:
    """The consortium admin's account: PRIVLEDGER_ADMIN_KEY, or on the local development chain
    the first anvil account."""
    from eth_account import Account

    from privledger.evm.accounts import DevAccountRefused, dev_account

    key = os.environ.get("PRIVLEDGER_ADMIN_KEY")
    if not key:
        try:
            return dev_account(0, chain_id)
        except DevAccountRefused as exc:
            fail(str(exc), code="no_admin_key", exit_code=2)
    try:
        account: LocalAccount = Account.from_key(key)
    except ValueError as exc:
        fail(f"PRIVLEDGER_ADMIN_KEY is not a private key: {exc}", code="bad_key", exit_code=2)
    return account


def connected(rpc_url: str | None) -> Web3:
    """A web3 connection to the chain (``--rpc-url``, else the settings'), or a clear error."""
    from web3 import Web3

    from privledger.config import get_settings

    url = rpc_url or get_settings().rpc_url
    w3 = Web3(Web3.HTTPProvider(url))
    if not w3.is_connected():
        fail(f"no chain answers at {url}", code="chain_unreachable")
    return w3


def deploy_command(rpc_url: RpcOption = None, json_output: JsonOption = False) -> None:
    """Deploy the ledger contracts (or reuse the recorded deployment) and print it.

    Signs with PRIVLEDGER_ADMIN_KEY; on the local development chain the first anvil account is used.
    """
    from privledger.config import get_settings
    from privledger.evm.client import ChainClient
    from privledger.evm.compiler import compile_contracts
    from privledger.evm.deploy import deploy_contracts
    from privledger.evm.errors import ChainError, ErrorDecoder

    settings = get_settings()
    w3 = connected(rpc_url)
    artifacts = compile_contracts(settings)
    account = admin_account(w3.eth.chain_id)
    errors = ErrorDecoder(artifact.abi for artifact in artifacts.values())
    client = ChainClient(w3, account, errors)
    try:
        deployment = deploy_contracts(client, artifacts, settings.deployments_dir)
    except ChainError as exc:
        fail(f"deploy failed: {exc}", code="deploy_failed")
    show(deployment.to_json())


@consortium_app.command("admit")
def consortium_admit(
    org: Annotated[str, typer.Option(help="The organisation's name, e.g. bank-a.")],
    account: Annotated[str, typer.Option(help="Its node account (`node init` prints it).")],
    role: Annotated[
        list[ChainRole] | None,
        typer.Option(
            help="Repeatable; default data_owner and operator. An account joining a registered "
            "organisation, e.g. a rotated node account, needs org_admin to act as its node."
        ),
    ] = None,
    balance_wei: Annotated[
        int, typer.Option(min=0, help="Fund the account up to this balance (task fees).")
    ] = 10**21,
    rpc_url: RpcOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register an organisation with its node account as admin, grant its roles and fund it;
    steps already done on chain are skipped. Prints the organisation."""
    from privledger.evm.contracts import Role
    from privledger.evm.errors import ChainError
    from privledger.evm.membership import admit_org

    roles = Role(0)
    for name in role or [ChainRole.DATA_OWNER, ChainRole.OPERATOR]:
        roles |= Role(ROLE_BITS[name])
    ledger = admin_ledger(rpc_url)
    try:
        admitted = admit_org(ledger, name=org, admin=account, roles=roles, balance_wei=balance_wei)
    except (ChainError, ValueError) as exc:
        fail(f"{org} not admitted: {exc}", code="not_admitted")
    show(admitted.to_json(), one_line=True)


@consortium_app.command("remove")
def consortium_remove(
    account: Annotated[str, typer.Option(help="The account to take every role from.")],
    rpc_url: RpcOption = None,
    json_output: JsonOption = False,
) -> None:
    """Take every role of an account back, e.g. a node account retired by a key rotation."""
    from privledger.evm.errors import ChainError
    from privledger.evm.membership import remove_account

    try:
        org_id = remove_account(admin_ledger(rpc_url), account)
    except (ChainError, ValueError) as exc:
        fail(f"{account} not removed: {exc}", code="not_removed")
    show({"account": account, "orgId": org_id, "removed": True}, one_line=True)


def admin_ledger(rpc_url: str | None) -> Any:
    """The deployed ledger signed by the consortium admin (PRIVLEDGER_ADMIN_KEY)."""
    from privledger.config import get_settings
    from privledger.evm.artifacts import load_artifacts
    from privledger.evm.deploy import load_deployment
    from privledger.evm.ledger import Ledger

    settings = get_settings()
    w3 = connected(rpc_url)
    deployment = load_deployment(settings.deployments_dir, w3.eth.chain_id)
    if deployment is None:
        fail("the ledger is not deployed on this chain: `privledger deploy`", code="not_deployed")
    admin = admin_account(w3.eth.chain_id)
    return Ledger.connect(w3, load_artifacts(settings.build_dir / "contracts"), deployment, admin)
