"""Fixtures of the attack suite: the e2e consortium with a malicious requester's node beside it
(see :mod:`tests.security.malicious`), and the evm tests' contracts-only consortium."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from privledger.demo import prepare_node_home, start_node, wait_healthy
from privledger.evm.accounts import dev_account
from privledger.evm.contracts import Role
from tests.e2e.conftest import Running, running  # noqa: F401 (the consortium fixture)
from tests.evm.conftest import consortium  # noqa: F401 (the contracts-only consortium)

from .malicious import MALLORY_ACCOUNT, Mallory
from .modified_node import ATTACKS_ENV

# mallory's node releases every result over any data: it skips every release threshold
EVERYTHING = {
    str(level): {"kinds": ["psi", "pir", "stats", "fl"], "minResult": 1, "outputToProvider": True}
    for level in (1, 2, 3, 4)
}


@pytest.fixture(scope="session")
def mallory(
    running: Running,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Mallory]:
    admin = running.ledger(0)
    account = dev_account(MALLORY_ACCOUNT)
    org_id = admin.orgs.register_org("mallory", account.address, "", bytes(32))
    admin.as_account(account).orgs.grant_roles(
        org_id, account.address, Role.DATA_OWNER | Role.OPERATOR
    )
    policy = tmp_path_factory.mktemp("mallory") / "release-everything.json"
    policy.write_text(json.dumps(EVERYTHING))
    settings = running.settings
    home, tokens = prepare_node_home(
        settings, "mallory", MALLORY_ACCOUNT, Role.DATA_OWNER | Role.OPERATOR
    )
    attacks = tmp_path_factory.mktemp("mallory-attacks")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRIVLEDGER_POLICY_FILE", str(policy))
        patch.setenv(ATTACKS_ENV, str(attacks))
        node = start_node(
            settings, "mallory", home, tokens, running.info["rpcUrl"], settings.var_dir / "logs"
        )
    # the same node, run with the modifications of tests/security/modified_node.py
    node.stop()
    node.command = [sys.executable, "-m", "tests.security.modified_node", *node.command[3:]]
    node.restart()
    try:
        wait_healthy(node)
        yield Mallory(running, node, org_id, home, attacks)
    finally:
        node.stop()
