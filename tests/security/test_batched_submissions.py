"""A requester that submits several tasks in one transaction, through a contract of its own that
its org admin made an operator: each task is checked against the grants it consumed, never
against another task's of the same transaction."""

from __future__ import annotations

from typing import Any

import pytest
import solcx
from eth_typing import ChecksumAddress

from privledger.config import Settings
from privledger.evm.accounts import dev_account
from privledger.evm.compiler import EVM_VERSION, find_solc
from privledger.evm.contracts import FailureReason, Role, TaskStatus
from privledger.node.components import KINDS, protocol_id
from privledger.node.spec import SpecInput, TaskSpec

from .malicious import FEE, MALLORY_ACCOUNT, Mallory, grant, now, wait_closed
from .test_requester_attacks import _failed_for, _phones, _spec

pytestmark = pytest.mark.security

# mallory's contract: two calls to one target in one transaction, a revert of either bubbled up
TWO_CALLS = """// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

contract TwoCalls {
    function run(address target, bytes calldata first, uint256 firstValue, bytes calldata second,
        uint256 secondValue) external payable {
        _call(target, first, firstValue);
        _call(target, second, secondValue);
    }

    function _call(address target, bytes calldata data, uint256 value) private {
        (bool ok, bytes memory reason) = target.call{value: value}(data);
        if (!ok) {
            assembly {
                revert(add(reason, 32), mload(reason))
            }
        }
    }
}
"""


def _two_calls(settings: Settings) -> tuple[list[dict[str, Any]], str]:
    """The ABI and bytecode of TWO_CALLS, compiled by the project's compiler."""
    standard_input = {
        "language": "Solidity",
        "sources": {"TwoCalls.sol": {"content": TWO_CALLS}},
        "settings": {
            "evmVersion": EVM_VERSION,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    output = solcx.compile_standard(standard_input, solc_binary=find_solc(settings))
    contract = output["contracts"]["TwoCalls.sol"]["TwoCalls"]
    return contract["abi"], "0x" + contract["evm"]["bytecode"]["object"]


def test_a_second_task_in_one_transaction_is_held_to_its_own_grant(
    mallory: Mallory, settings: Settings
) -> None:
    """bank-a gave mallory two grants on one dataset: G1 (PSI, no cap) and G2 (ECDH with a cap
    of 5 keys). Mallory's contract submits a task under G1, then in the same transaction one of
    40 of bank-a's customers under G2. bank-a's node read every grant the transaction consumed
    and took the first on its dataset, G1: the second task settled and mallory learned the 40.
    It is held to G2, whose cap refuses it."""
    running = mallory.running
    w3 = running.w3
    data = running.register("bank-a")
    g1 = grant(running, "bank-a", data, mallory.org_id, kinds=["psi"], maxUses=1)
    capped = {"protocols": ["ecdh"], "columns": {"phone": ["join"]}, "maxRequesterSet": 5}
    g2 = grant(running, "bank-a", data, mallory.org_id, terms=capped, maxUses=10)
    guesses = mallory.register(["phone"], _phones(mallory, "bank-a", 40, 10))

    me = dev_account(MALLORY_ACCOUNT).address
    abi, bytecode = _two_calls(settings)
    deployed = w3.eth.contract(abi=abi, bytecode=bytecode).constructor().transact({"from": me})
    address: ChecksumAddress = w3.eth.wait_for_transaction_receipt(deployed)["contractAddress"]
    two_calls = w3.eth.contract(address=address, abi=abi)
    mallory.ledger.orgs.grant_roles(mallory.org_id, address, Role.OPERATOR)

    items = [
        SpecInput(dataset=guesses, org=mallory.org_id, column="phone"),
        SpecInput(dataset=data, org=running.org_ids["bank-a"], column="phone"),
    ]
    first_spec, second_spec = _spec(mallory, "ecdh", items), _spec(mallory, "ecdh", items)
    ledger = mallory.ledger.tasks
    first = ledger.task_count() + 1
    mallory._store(first, first_spec, "submitted")  # its node runs both, as a modified one would
    mallory._store(first + 1, second_spec, "submitted")
    deadline = now(running) + 600

    def submission(spec: TaskSpec, grant_id: bytes) -> str:
        inputs = [bytes.fromhex(item.dataset[2:]) for item in spec.inputs]
        args = [spec.hash, int(KINDS[spec.kind]), protocol_id(spec.protocol), inputs]
        return ledger.contract.encode_abi(
            "submitTask", args=[*args, [bytes(32), grant_id], spec.participants, deadline]
        )

    before = mallory.balance()
    sent = two_calls.functions.run(
        ledger.address, submission(first_spec, g1), FEE, submission(second_spec, g2), FEE
    ).transact({"from": me, "value": 2 * FEE, "gas": 3_000_000})
    assert w3.eth.wait_for_transaction_receipt(sent)["status"] == 1
    assert ledger.task_count() == first + 1
    grants = running.ledger(0).grants
    assert grants.get_grant(g1).used == 1 and grants.get_grant(g2).used == 1

    _failed_for(mallory, first + 1, FailureReason.TERMS_VIOLATION, before)
    # the first task ran under its own grant, G1, which caps nothing
    assert wait_closed(running, first).status is TaskStatus.SETTLED
