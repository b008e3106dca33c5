"""Every custom error our contracts can raise is exercised by a test that names it.

A few errors guard paths no caller can reach through the deployed, wired contracts; each is listed
with the reason, so a new error cannot slip in untested.
"""

from __future__ import annotations

from pathlib import Path

from privledger.evm.accounts import dev_account
from privledger.evm.artifacts import Artifact
from privledger.evm.client import ChainClient
from privledger.evm.ledger import Ledger

from .conftest import reverts

UNREACHABLE = {
    "SafeCastOverflowedUintDowncast": "stored org ids belong to Active organisations and fees are "
    "ether amounts, bounded long before 2^32 / 2^96",
    "ReentrancyGuardReentrantCall": "OpenZeppelin's guard on withdraw; reaching it takes an "
    "attacking receiver contract",
    "MeteringInvalidWeights": "only the ledger allocates, and it always passes one weight per "
    "payee with a positive sum (equal weights when nothing was earned)",
}


def test_every_custom_error_is_named_by_a_test(artifacts: dict[str, Artifact]) -> None:
    declared = {
        entry["name"]
        for artifact in artifacts.values()
        for entry in artifact.abi
        if entry["type"] == "error"
    }
    tests = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    untested = {name for name in declared - UNREACHABLE.keys() if f'"{name}"' not in tests}
    assert not untested, f"custom errors without a test: {sorted(untested)}"
    assert UNREACHABLE.keys() <= declared, "an UNREACHABLE entry names no declared error"


def test_construction_refuses_a_zero_ledger_or_a_foreign_admin(ledger: Ledger) -> None:
    """The GrantRegistry and the Metering are wired to the TaskLedger on construction, by the
    consortium admin of the OrgRegistry they are given."""
    admin: ChainClient = ledger.client
    orgs = ledger.deployment.address("OrgRegistry")
    data = ledger.deployment.address("DataRegistry")
    tasks = ledger.deployment.address("TaskLedger")
    zero = "0x" + "00" * 20
    outsider = dev_account(7).address
    cases = (
        ("GrantRegistry", (orgs, data, zero, admin.address), "GrantRegistryInvalidLedger"),
        ("Metering", (orgs, data, zero, admin.address), "MeteringInvalidLedger"),
        ("GrantRegistry", (orgs, data, tasks, outsider), "GrantRegistryUnauthorized"),
        ("Metering", (orgs, data, tasks, outsider), "MeteringUnauthorized"),
    )
    for name, args, error in cases:
        artifact = ledger.artifacts[name]
        with reverts(error):
            admin.deploy(artifact.abi, artifact.bytecode, *args)
    assert ledger.grants.contract.functions.taskLedger().call() == tasks
    assert ledger.metering.contract.functions.taskLedger().call() == tasks
