"""The transaction client under concurrency and failures, against the real anvil: nonces stay
gapless and unique, dropped transactions are broadcast again, a lost answer is not sent twice."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from web3 import Web3

from privledger.evm import client as client_module
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import free_port
from privledger.evm.client import ChainClient
from privledger.evm.contracts import Kind, TaskStatus
from privledger.evm.errors import ChainError, ChainRevert
from privledger.evm.ledger import Ledger
from privledger.evm.rpc import RpcError, RpcUnavailable

from .conftest import ZERO32, Consortium, reverts

SUBMISSIONS = 48
THREADS = 8


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    return w3.provider.make_request(method, list(params))  # type: ignore[arg-type]


def _nonces(w3: Web3, sender: str, first_block: int) -> list[int]:
    """Nonces of every transaction ``sender`` got mined from ``first_block`` on."""
    nonces = []
    for number in range(first_block, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == sender:  # type: ignore[index]
                nonces.append(tx["nonce"])  # type: ignore[index]
    return nonces


def test_concurrent_submissions_land_with_distinct_ids_and_gapless_nonces(
    consortium: Consortium,
) -> None:
    telecom, bank = consortium.telecom, consortium.bank_a
    w3 = consortium.w3
    mine, theirs = consortium.dataset(telecom), consortium.dataset(bank)
    account = dev_account(3)
    first_nonce = w3.eth.get_transaction_count(account.address, "pending")
    first_block = w3.eth.block_number + 1
    deadline = consortium.now() + 3_600

    def submit(_: int) -> tuple[int, bytes]:
        spec_hash = secrets.token_bytes(32)
        # a ledger per call, as the API builds one per request for the caller's account
        ledger = consortium.admin.as_account(account)
        task_id = ledger.tasks.submit_task(
            spec_hash=spec_hash,
            kind=Kind.PSI,
            protocol=1,  # ecdh
            inputs=[mine, theirs],
            grant_ids=[ZERO32, ZERO32],
            participants=[telecom.org_id, bank.org_id],
            deadline=deadline,
        )
        return task_id, spec_hash

    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        submitted = list(pool.map(submit, range(SUBMISSIONS)))
    elapsed = time.monotonic() - started

    ids = [task_id for task_id, _ in submitted]
    assert len(set(ids)) == SUBMISSIONS
    for task_id, spec_hash in submitted:
        task = telecom.ledger.tasks.get_task(task_id)
        assert (task.spec_hash, task.status) == (spec_hash, TaskStatus.SUBMITTED)
    nonces = _nonces(w3, account.address, first_block)
    assert sorted(nonces) == list(range(first_nonce, first_nonce + SUBMISSIONS))
    assert w3.eth.get_transaction_count(account.address, "pending") == first_nonce + SUBMISSIONS
    assert elapsed < 15, f"{SUBMISSIONS} submissions took {elapsed:.1f}s"


def test_ledgers_of_one_account_share_one_nonce_counter(consortium: Consortium) -> None:
    account = dev_account(3)
    first = consortium.admin.as_account(account)
    again = consortium.admin.as_account(account)
    assert again is first
    assert consortium.bank_a.ledger.as_account(account).client is first.client


def test_a_stale_nonce_is_resynchronised(consortium: Consortium) -> None:
    """Another client of the same account (another process) signs in between."""
    telecom = consortium.telecom
    w3 = consortium.w3
    ours = telecom.ledger
    ours.orgs.update_node(telecom.org_id, "http://a", bytes(32))  # our nonce is now cached
    theirs = Ledger.connect(w3, ours.artifacts, ours.deployment, dev_account(3))
    assert theirs.client is not ours.client
    first_block = w3.eth.block_number + 1
    start = w3.eth.get_transaction_count(telecom.address, "pending")
    for endpoint in ("http://b", "http://c"):
        theirs.orgs.update_node(telecom.org_id, endpoint, bytes(32))
    ours.orgs.update_node(telecom.org_id, "http://d", bytes(32))  # nonce too low, then right
    assert _nonces(w3, telecom.address, first_block) == [start, start + 1, start + 2]
    assert ours.orgs.get_org(telecom.org_id).endpoint == "http://d"


def test_a_revert_is_refused_before_signing(consortium: Consortium) -> None:
    telecom = consortium.telecom
    w3 = consortium.w3
    start = w3.eth.get_transaction_count(telecom.address, "pending")
    with reverts("DataRegistryUnknownDataset"):
        telecom.ledger.tasks.submit_task(
            spec_hash=secrets.token_bytes(32),
            kind=Kind.PSI,
            protocol=1,  # ecdh
            inputs=[secrets.token_bytes(32)],
            grant_ids=[ZERO32],
            participants=[telecom.org_id],
            deadline=consortium.now() + 3_600,
        )
    assert w3.eth.get_transaction_count(telecom.address, "pending") == start  # nothing sent
    telecom.ledger.orgs.update_node(telecom.org_id, "http://after", bytes(32))
    assert w3.eth.get_transaction_count(telecom.address, "pending") == start + 1


def _submit(consortium: Consortium, ledger: Ledger, inputs: list[bytes]) -> int:
    telecom = consortium.telecom
    # a spec hash with no zero byte: calldata costs 4 gas a zero byte and 16 any other, so two
    # random hashes of one shape could differ in gas, and the second be estimated again
    spec_hash = bytes(byte | 1 for byte in secrets.token_bytes(32))
    return ledger.tasks.submit_task(
        spec_hash=spec_hash,
        kind=Kind.PSI,
        protocol=1,  # ecdh
        inputs=inputs,
        grant_ids=[ZERO32] * len(inputs),
        participants=[telecom.org_id, consortium.bank_a.org_id],
        deadline=consortium.now() + 3_600,
    )


def _methods(client: ChainClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The methods the client's batches ask from now on (pre-flights and prices)."""
    asked: list[str] = []
    rpc = client._family.rpc
    batch = rpc.batch

    def recorded(calls: Any) -> list[Any]:
        asked.extend(method for method, _ in calls)
        return batch(calls)

    monkeypatch.setattr(rpc, "batch", recorded)
    return asked


def test_a_known_shape_is_preflighted_at_its_estimate_and_a_revert_still_refused(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After one submission is estimated, the next of its shape is pre-flighted with an
    eth_call at that estimate, not estimated again; a call of that shape that reverts is still
    refused with its decoded error before anything is signed."""
    telecom, w3 = consortium.telecom, consortium.w3
    ledger = telecom.ledger
    inputs = [consortium.dataset(telecom), consortium.dataset(consortium.bank_a)]
    _submit(consortium, ledger, inputs)
    asked = _methods(ledger.client, monkeypatch)
    task_id = _submit(consortium, ledger, inputs)
    assert ledger.tasks.get_task(task_id).status is TaskStatus.SUBMITTED
    assert "eth_estimateGas" not in asked and "eth_call" in asked
    start = w3.eth.get_transaction_count(telecom.address, "pending")
    with reverts("DataRegistryUnknownDataset"):
        _submit(consortium, ledger, [inputs[0], secrets.token_bytes(32)])  # same shape
    assert w3.eth.get_transaction_count(telecom.address, "pending") == start  # nothing sent
    assert asked.count("eth_estimateGas") == 1  # the revert, decoded as an estimate gives it


def test_a_call_needing_more_than_its_shapes_estimate_is_estimated_again(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shape's estimate too low for the call now (here: set so) is not sent as the gas limit:
    the call fails at it, is estimated anew, and is mined with enough gas."""
    telecom = consortium.telecom
    ledger = telecom.ledger
    inputs = [consortium.dataset(telecom), consortium.dataset(consortium.bank_a)]
    _submit(consortium, ledger, inputs)
    estimates = ledger.client._family.gas_estimates
    (shape,) = [key for key in estimates if key[0] == ledger.tasks.address.lower()]
    needed = estimates[shape]
    estimates[shape] = 30_000
    asked = _methods(ledger.client, monkeypatch)
    task_id = _submit(consortium, ledger, inputs)
    assert ledger.tasks.get_task(task_id).status is TaskStatus.SUBMITTED
    assert asked[:1] == ["eth_call"] and "eth_estimateGas" in asked
    assert estimates[shape] >= needed * 0.9


def test_a_dropped_transaction_is_broadcast_again(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "REBROADCAST_AFTER_S", 0.2)
    telecom = consortium.telecom
    w3 = consortium.w3
    orgs = telecom.ledger.orgs
    _rpc(w3, "evm_setAutomine", False)
    try:
        sent = telecom.ledger.client.send(
            orgs.contract.functions.updateNode(telecom.org_id, "http://dropped", bytes(32))
        )
        _rpc(w3, "anvil_dropTransaction", sent.tx_hash.to_0x_hex())
        assert _rpc(w3, "eth_getTransactionByHash", sent.tx_hash.to_0x_hex())["result"] is None
        done = threading.Event()

        def mine() -> None:
            while not done.is_set():
                _rpc(w3, "evm_mine")
                time.sleep(0.05)

        miner = threading.Thread(target=mine, daemon=True)
        miner.start()
        try:
            receipt = telecom.ledger.client.wait(sent)
        finally:
            done.set()
            miner.join()
    finally:
        _rpc(w3, "evm_setAutomine", True)
    assert receipt["transactionHash"] == sent.tx_hash
    assert orgs.get_org(telecom.org_id).endpoint == "http://dropped"


@pytest.mark.parametrize("sync_send", [True, False], ids=["sync-send", "send-and-poll"])
def test_a_lost_answer_is_not_sent_twice(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch, sync_send: bool
) -> None:
    """The node took the transaction but the answer was lost: the client finds the transaction
    and goes on with the next nonce, instead of signing the call again -- whether the receipt
    comes in the answer to the send (anvil) or is polled for (a node without that method)."""
    telecom = consortium.telecom
    w3 = consortium.w3
    client: ChainClient = telecom.ledger.client
    assert client._family.sync_send()  # anvil answers eth_sendRawTransactionSync
    monkeypatch.setattr(client._family, "_sync_send", sync_send)
    rpc = client._rpc
    real_request, real_start = rpc.request, rpc.start
    lost = []

    def request(method: str, params: Any) -> Any:
        result = real_request(method, params)
        if method == "eth_sendRawTransaction" and not lost:
            lost.append(result)
            raise ConnectionResetError("answer lost")
        return result

    def start(method: str, params: Any) -> Any:
        answer = real_start(method, params)
        if method != client_module.SYNC_SEND or lost:
            return answer

        def lost_answer() -> Any:
            lost.append(answer())
            raise RpcUnavailable("answer lost")

        return lost_answer

    monkeypatch.setattr(rpc, "request", request)
    monkeypatch.setattr(rpc, "start", start)
    start_nonce = w3.eth.get_transaction_count(telecom.address, "pending")
    first_block = w3.eth.block_number + 1
    telecom.ledger.orgs.update_node(telecom.org_id, "http://once", bytes(32))
    telecom.ledger.orgs.update_node(telecom.org_id, "http://twice", bytes(32))
    assert lost
    assert _nonces(w3, telecom.address, first_block) == [start_nonce, start_nonce + 1]
    assert telecom.ledger.orgs.get_org(telecom.org_id).endpoint == "http://twice"


def test_a_node_without_the_synchronous_send_is_polled(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that does not know eth_sendRawTransactionSync (e.g. Besu) is asked once, then
    sent transactions the usual way and polled for receipts."""
    ledger = Ledger.connect(
        consortium.w3, consortium.admin.artifacts, consortium.admin.deployment, dev_account(3)
    )
    rpc = ledger.client._rpc
    real_start = rpc.start
    asked = []

    def start(method: str, params: Any) -> Any:  # every request goes out through start
        asked.append(method)
        if method == client_module.SYNC_SEND:
            raise RpcError({"code": client_module.METHOD_NOT_FOUND, "message": "not found"})
        return real_start(method, params)

    monkeypatch.setattr(rpc, "start", start)
    for endpoint in ("http://polled-1", "http://polled-2"):
        ledger.orgs.update_node(consortium.telecom.org_id, endpoint, bytes(32))
    assert asked.count(client_module.SYNC_SEND) == 1
    assert asked.count("eth_sendRawTransaction") == 2
    assert "eth_getTransactionReceipt" in asked
    assert ledger.orgs.get_org(consortium.telecom.org_id).endpoint == "http://polled-2"


def test_an_unreachable_node_is_a_chain_error(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = consortium.telecom.ledger
    rpc = ledger.client._rpc
    assert rpc._target is not None
    monkeypatch.setattr(rpc, "_target", ("http", "127.0.0.1", free_port(), "/"))
    monkeypatch.setattr(rpc, "_local", threading.local())  # no kept-alive connection
    with pytest.raises(ChainError) as caught:
        ledger.tasks.task_count()
    assert not isinstance(caught.value, ChainRevert)
    with pytest.raises(ChainError):
        ledger.orgs.update_node(consortium.telecom.org_id, "http://never", bytes(32))
