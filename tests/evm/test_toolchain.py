"""Compiler cache, anvil restart with a state file, and deployment reuse, against the real tools."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest
from web3 import Web3
from web3.types import RPCEndpoint

from privledger.config import Settings
from privledger.evm.accounts import DevAccountRefused, dev_account
from privledger.evm.anvil import start_anvil
from privledger.evm.artifacts import Artifact
from privledger.evm.client import ChainClient
from privledger.evm.compiler import compile_contracts
from privledger.evm.deploy import CONTRACTS, deploy_contracts, load_deployment
from privledger.evm.errors import ErrorDecoder
from privledger.evm.ledger import Ledger


def _copy_project(settings: Settings, target: Path) -> Settings:
    """A project tree whose contracts we may edit, sharing the installed npm toolchain."""
    shutil.copytree(settings.contracts_dir, target / "contracts")
    (target / "chain").mkdir()
    (target / "chain" / "node_modules").symlink_to(settings.chain_dir / "node_modules")
    (target / "chain" / "bin").symlink_to(settings.chain_dir / "bin")
    shutil.copy(settings.chain_dir / "package-lock.json", target / "chain" / "package-lock.json")
    return Settings(project_root=target)


def test_artifacts_hold_abi_bytecode_and_hashes(artifacts: dict[str, Artifact]) -> None:
    assert set(CONTRACTS) <= set(artifacts)
    for name in CONTRACTS:
        artifact = artifacts[name]
        assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 100
        assert artifact.compiler_version.startswith("0.8.")
        assert len(artifact.source_hash) == 64
        assert any(entry["type"] == "error" for entry in artifact.abi)


def test_compile_is_cached_until_a_source_changes(
    settings: Settings, artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    """The session's build of the same sources is this copy's cache (a compile from nothing is
    test_compiler_warns_about_our_sources_only's; each takes ~9 s here)."""
    project = _copy_project(settings, tmp_path)
    shutil.copytree(settings.build_dir / "contracts", project.build_dir / "contracts")
    key_file = project.build_dir / "contracts" / ".cache-key"
    stamp = key_file.stat().st_mtime_ns
    first = compile_contracts(project)
    again = compile_contracts(project)
    assert key_file.stat().st_mtime_ns == stamp  # nothing was rewritten
    assert first == again == artifacts

    source = project.contracts_dir / "BatchAnchor.sol"
    source.write_text(source.read_text() + "\n// a change\n")
    changed = compile_contracts(project)
    assert changed["BatchAnchor"].source_hash != first["BatchAnchor"].source_hash
    assert changed["OrgRegistry"].source_hash == first["OrgRegistry"].source_hash


def test_compiler_warns_about_our_sources_only(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenZeppelin's own sources draw solc warnings ("at" will become a keyword); a first
    `make demo` must not print them. A warning about one of our contracts is still shown: one
    compile (~9 s here) of our sources and one that draws a warning, whose only warning is that
    one."""
    project = _copy_project(settings, tmp_path)
    (project.contracts_dir / "Shadow.sol").write_text(
        "// SPDX-License-Identifier: Apache-2.0\npragma solidity ^0.8.24;\n"
        "contract Shadow { function f() external pure returns (uint256) "
        "{ uint256 unused = 1; return 2; } }\n"
    )
    with caplog.at_level(logging.WARNING, logger="privledger.evm.compiler"):
        compile_contracts(project, force=True)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "contracts/Shadow.sol" in warnings[0]
    assert "Unused local variable" in warnings[0]


def test_dev_accounts_refused_off_the_local_chain() -> None:
    assert dev_account(0).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    with pytest.raises(DevAccountRefused):
        dev_account(0, chain_id=1)


def test_restart_keeps_every_record_and_deploy_reuses(
    settings: Settings, artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    deployments = tmp_path / "deployments"
    errors = ErrorDecoder(a.abi for a in artifacts.values())
    with start_anvil(settings.chain_dir, state_file=state) as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        admin = ChainClient(w3, dev_account(0), errors)
        deployment = deploy_contracts(admin, artifacts, deployments)
        ledger = Ledger.from_client(admin, artifacts, deployment)
        org_id = ledger.orgs.register_org(
            "bank-a", dev_account(1).address, "http://a", b"\x01" * 32
        )
        block = w3.eth.block_number
        (registered,) = ledger.orgs.contract.events.OrgRegistered().get_logs(from_block=block)
    assert state.is_file()

    with start_anvil(settings.chain_dir, state_file=state) as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        assert w3.eth.block_number == block
        admin = ChainClient(w3, dev_account(0), errors)
        again = deploy_contracts(admin, artifacts, deployments)
        assert again == deployment  # reused, nothing redeployed
        assert w3.eth.block_number == block
        restarted = Ledger.from_client(admin, artifacts, again)
        org = restarted.orgs.get_org(org_id)
        assert (org.name, org.endpoint, org.node_key) == ("bank-a", "http://a", b"\x01" * 32)
        # the records too: the block, its transaction, receipt and log
        receipt = w3.eth.get_transaction_receipt(registered["transactionHash"])
        assert (receipt["status"], receipt["blockNumber"]) == (1, block)
        assert w3.eth.get_block(block)["transactions"] == [registered["transactionHash"]]
        assert restarted.orgs.contract.events.OrgRegistered().get_logs(from_block=block) == (
            [registered]
        )

    # a fresh chain with the same chain id: the recorded deployment is stale and is replaced
    with start_anvil(settings.chain_dir) as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        admin = ChainClient(w3, dev_account(0), errors)
        fresh = deploy_contracts(admin, artifacts, deployments)
        assert fresh.genesis_hash == w3.eth.get_block(0)["hash"].to_0x_hex()
        assert all(w3.eth.get_code(fresh.address(name)) for name in CONTRACTS)
        assert load_deployment(deployments, fresh.chain_id) == fresh


def test_client_recovers_when_its_account_signs_elsewhere(ledger: Ledger) -> None:
    client = ledger.client
    ledger.orgs.register_org("first", dev_account(11).address, "", bytes(32))  # caches the nonce
    other = client.with_account(client.account)  # the same account, another signer
    other.transact(
        ledger.orgs.contract.functions.registerOrg("second", dev_account(12).address, "", bytes(32))
    )
    org_id = ledger.orgs.register_org("third", dev_account(13).address, "", bytes(32))
    assert ledger.orgs.get_org(org_id).name == "third"


def test_a_chain_restarted_again_and_again_keeps_its_genesis(
    settings: Settings, tmp_path: Path
) -> None:
    """anvil adds the genesis block it makes at each start to the blocks it loads and dumps them
    all, so a state file restarted a few times held several blocks numbered 0, and which one a
    restart took as its genesis varied: the genesis hash changed and every recorded deployment
    looked stale (issue 23, item 3: the demo after `chain up`). Restarts keep the chain's own."""
    state = tmp_path / "state.json"
    with start_anvil(settings.chain_dir, state_file=state) as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        genesis = w3.eth.get_block(0)["hash"]
        assert w3.eth.get_block(1)["parentHash"] == genesis
    for _ in range(4):
        time.sleep(1.1)  # a genesis made in another second: another hash
        with start_anvil(settings.chain_dir, state_file=state) as chain:
            w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
            assert w3.eth.get_block(0)["hash"] == genesis
            assert w3.eth.get_block(1)["parentHash"] == genesis
