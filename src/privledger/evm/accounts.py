"""Accounts of the local development chain.

anvil funds the accounts of a well-known test mnemonic; they are for the embedded local chain only
and are refused for any other chain id.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount

from privledger.evm.anvil import DEFAULT_CHAIN_ID

DEV_MNEMONIC = "test test test test test test test test test test test junk"

Account.enable_unaudited_hdwallet_features()


class DevAccountRefused(ValueError):
    """Development keys were asked for on a chain that is not the local development chain."""


def dev_account(index: int, chain_id: int = DEFAULT_CHAIN_ID) -> LocalAccount:
    """The ``index``-th funded anvil account; only on the local development chain."""
    if chain_id != DEFAULT_CHAIN_ID:
        raise DevAccountRefused(
            f"chain {chain_id} is not the local development chain ({DEFAULT_CHAIN_ID}): "
            "set PRIVLEDGER_ADMIN_KEY"
        )
    account: LocalAccount = Account.from_mnemonic(
        DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account
