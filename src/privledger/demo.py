"""The local consortium: one command starts a chain, deploys the ledger and onboards organisations.

The walking-path scenario (nodes, datasets, a PSI task) joins this as the node service lands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from web3 import Web3

from privledger.config import Settings
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import start_anvil
from privledger.evm.client import ChainClient
from privledger.evm.compiler import compile_contracts
from privledger.evm.contracts import Role
from privledger.evm.deploy import deploy_contracts
from privledger.evm.errors import ErrorDecoder
from privledger.evm.ledger import Ledger

# name, dev-account index of its admin, roles of that admin
DEMO_ORGS: tuple[tuple[str, int, Role], ...] = (
    ("bank-a", 1, Role.DATA_OWNER | Role.OPERATOR),
    ("bank-b", 2, Role.DATA_OWNER | Role.OPERATOR),
    ("telecom", 3, Role.DATA_OWNER | Role.OPERATOR),
    ("regulator", 4, Role.AUDITOR),
)


def onboard_demo_orgs(ledger: Ledger) -> list[dict[str, Any]]:
    """Register the demo organisations once; a second run finds them on chain."""
    onboarded = []
    for name, index, roles in DEMO_ORGS:
        admin = dev_account(index)
        org_id = ledger.orgs.org_of(admin.address)
        if org_id == 0:
            org_id = ledger.orgs.register_org(name, admin.address, "", bytes(32))
            if roles & Role.AUDITOR:
                ledger.orgs.grant_roles(org_id, admin.address, Role.AUDITOR)
            org_admin = ledger.as_account(admin)
            other_roles = roles & ~Role.AUDITOR
            if other_roles:
                org_admin.orgs.grant_roles(org_id, admin.address, other_roles)
        onboarded.append(
            {
                "orgId": org_id,
                "name": name,
                "admin": admin.address,
                "roles": int(ledger.orgs.roles_of(admin.address)),
            }
        )
    return onboarded


def run_demo(
    settings: Settings,
    *,
    port: int | None,
    keep_running: bool,
    report: Callable[[dict[str, Any]], None],
    console: Console,
) -> None:
    """Start the chain (state kept in var/), deploy or reuse the ledger, onboard the orgs, report
    the summary; then, with ``keep_running``, serve until Ctrl-C."""
    artifacts = compile_contracts(settings)
    handle = start_anvil(
        settings.chain_dir,
        port=port or settings.chain_port,
        state_file=settings.chain_state_file,
    )
    try:
        w3 = Web3(Web3.HTTPProvider(handle.rpc_url))
        errors = ErrorDecoder(artifact.abi for artifact in artifacts.values())
        admin = ChainClient(w3, dev_account(0), errors)
        deployment = deploy_contracts(admin, artifacts, settings.deployments_dir)
        ledger = Ledger.from_client(admin, artifacts, deployment)
        summary = {
            "rpcUrl": handle.rpc_url,
            "chainId": deployment.chain_id,
            "contracts": deployment.addresses,
            "orgs": onboard_demo_orgs(ledger),
            "blockNumber": w3.eth.block_number,
        }
        report(summary)
        if keep_running:
            console.print(f"consortium chain running at {handle.rpc_url}; Ctrl-C stops it")
            try:
                while handle.process.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    finally:
        handle.close()
