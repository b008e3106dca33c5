"""The consortium admin's admissions (``privledger consortium admit`` / ``remove``): a new
organisation is registered, given its roles and funded once, however often the deployer runs; a
rotated node account joins its registered organisation; a retired one loses every role."""

from __future__ import annotations

import pytest
from eth_account import Account

from privledger.evm.contracts import Role
from privledger.evm.ledger import Ledger
from privledger.evm.membership import MembershipError, admit_org, remove_account

FUNDS = 10**18


def test_an_admission_is_made_once_and_a_rotated_account_joins(ledger: Ledger) -> None:
    first, second = Account.create().address, Account.create().address
    roles = Role.DATA_OWNER | Role.OPERATOR
    admitted = admit_org(ledger, name="acme", admin=first, roles=roles, balance_wei=FUNDS)
    assert admitted.changed == ("registered", "roles", "funded")
    assert admitted.roles == Role.ORG_ADMIN | roles
    assert ledger.client.w3.eth.get_balance(first) == FUNDS
    again = admit_org(ledger, name="acme", admin=first, roles=roles, balance_wei=FUNDS)
    assert again.changed == () and again.org_id == admitted.org_id

    rotated = admit_org(
        ledger, name="acme", admin=second, roles=Role.ORG_ADMIN | roles, balance_wei=FUNDS
    )
    assert rotated.org_id == admitted.org_id and rotated.changed == ("roles", "funded")
    assert remove_account(ledger, first) == admitted.org_id
    assert ledger.orgs.org_of(first) == 0
    assert ledger.orgs.has_org_role(admitted.org_id, second, Role.ORG_ADMIN)

    with pytest.raises(MembershipError, match="already a member of organisation 'acme'"):
        admit_org(ledger, name="other", admin=second, roles=roles, balance_wei=0)
    with pytest.raises(MembershipError, match="not a member"):
        remove_account(ledger, first)
