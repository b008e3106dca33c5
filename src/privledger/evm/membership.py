"""The consortium admin admits an organisation: registers it with its admin account (the account
of its node), grants it the roles it runs with and tops the account up to a balance. An account
admitted to an organisation that is already registered joins it with the roles given (a node
account being rotated: ``org_admin`` among them); ``remove_account`` takes every role back.

Gas is free on the consortium chain (zero base fee, zero gas price), but task fees are value
transfers, so an organisation needs ether to submit tasks. Every step is skipped when the chain
already shows it done, so a deployer that runs again (a restarted container) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from privledger.evm.contracts import Role
from privledger.evm.errors import ChainError
from privledger.evm.ledger import Ledger


class MembershipError(ChainError):
    """The account belongs to another organisation than the one named, or to none."""


@dataclass(frozen=True)
class Admitted:
    org_id: int
    name: str
    admin: str
    roles: Role
    balance_wei: int
    changed: tuple[str, ...]  # the steps this call took: registered, roles, funded

    def to_json(self) -> dict[str, object]:
        return {
            "orgId": self.org_id,
            "name": self.name,
            "admin": self.admin,
            "roles": int(self.roles),
            "balanceWei": self.balance_wei,
            "changed": list(self.changed),
        }


def admit_org(ledger: Ledger, *, name: str, admin: str, roles: Role, balance_wei: int) -> Admitted:
    """Register ``name`` with ``admin`` as its admin, grant ``roles`` to ``admin`` and fund it up
    to ``balance_wei``, each only if not done yet; signed by the ledger's (consortium admin)
    account."""
    admin = to_checksum_address(admin)
    orgs, changed = ledger.orgs, []
    org_id = orgs.org_of(admin)
    if org_id == 0:
        org_id = _org_named(ledger, name)
        if org_id == 0:
            org_id = orgs.register_org(name, admin, "", bytes(32))
            changed.append("registered")
    elif (registered := orgs.get_org(org_id).name) != name:
        raise MembershipError(f"{admin} is already a member of organisation {registered!r}")
    missing = roles & ~orgs.roles_of(admin)
    if missing:
        orgs.grant_roles(org_id, admin, missing)
        changed.append("roles")
    balance = int(ledger.client.w3.eth.get_balance(admin))
    if balance < balance_wei:
        ledger.client.transact_data(admin, b"", value=balance_wei - balance)
        balance = balance_wei
        changed.append("funded")
    return Admitted(org_id, name, admin, orgs.roles_of(admin), balance, tuple(changed))


def remove_account(ledger: Ledger, account: str) -> int:
    """Take every role of ``account`` back (a retired node account); its organisation's id."""
    account = to_checksum_address(account)
    org_id = ledger.orgs.org_of(account)
    if org_id == 0:
        raise MembershipError(f"{account} is not a member of any organisation")
    ledger.orgs.revoke_roles(org_id, account, ledger.orgs.roles_of(account))
    return org_id


def _org_named(ledger: Ledger, name: str) -> int:
    """The id of the organisation registered as ``name``, 0 if none (a scan: consortia are small
    and this runs when an account is admitted)."""
    for org_id in range(1, ledger.orgs.org_count() + 1):
        if ledger.orgs.get_org(org_id).name == name:
            return org_id
    return 0
