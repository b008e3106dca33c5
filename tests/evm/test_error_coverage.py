"""Every custom error our contracts can raise is exercised by a test that names it.

A few errors guard paths no caller can reach through the deployed, wired contracts; each is listed
with the reason, so a new error cannot slip in untested.
"""

from __future__ import annotations

from pathlib import Path

from privledger.evm.artifacts import Artifact
from privledger.evm.client import ChainClient
from privledger.evm.ledger import Ledger

from .conftest import reverts

UNREACHABLE = {
    "SafeCastOverflowedUintDowncast": "org ids and amounts are bounded long before 2^64 / 2^96",
    "ReentrancyGuardReentrantCall": "OpenZeppelin's guard on withdraw; reaching it takes an "
    "attacking receiver contract",
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


def test_wiring_refuses_the_zero_ledger(ledger: Ledger) -> None:
    admin: ChainClient = ledger.client
    orgs = ledger.deployment.address("OrgRegistry")
    data = ledger.deployment.address("DataRegistry")
    wirings = (
        ("GrantRegistry", (orgs, data, admin.address), "GrantRegistryInvalidLedger"),
        ("Metering", (orgs, admin.address), "MeteringInvalidLedger"),
    )
    for name, args, error in wirings:
        artifact = ledger.artifacts[name]
        receipt = admin.deploy(artifact.abi, artifact.bytecode, *args)
        fresh = admin.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
        with reverts(error):
            admin.transact(fresh.functions.setTaskLedger("0x" + "00" * 20))
