"""The lean JSON-RPC path gives exactly what web3 gives: view results, receipts, indexed rows."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from sqlmodel import Session, select
from web3 import Web3
from web3.contract import Contract
from web3.datastructures import AttributeDict

from privledger.api.routes.tasks import TIMELINE_EVENTS, referring, timeline_events
from privledger.evm.accounts import dev_account
from privledger.evm.client import _is_legacy, sign
from privledger.evm.contracts import Kind
from privledger.evm.indexer import EventIndexer, to_jsonable
from privledger.store.db import make_engine, sqlite_url
from privledger.store.events import events_named
from privledger.store.models import ChainBlock, ChainEvent, ChainTx

from .conftest import ZERO32, Consortium


def _activity(consortium: Consortium) -> tuple[int, bytes]:
    """Datasets, a grant, a task with a fee, a project and a batch: every kind of value."""
    bank_a, telecom = consortium.bank_a, consortium.telecom
    mine = consortium.dataset(telecom)
    theirs = consortium.dataset(bank_a, parents=(), price=123)
    grant = consortium.grant(theirs, bank_a, telecom)
    task_id = telecom.ledger.tasks.submit_task(
        spec_hash=secrets.token_bytes(32),
        kind=Kind.PSI,
        protocol=1,  # ecdh
        inputs=[mine, theirs],
        grant_ids=[ZERO32, grant],
        participants=[telecom.org_id, bank_a.org_id],
        deadline=consortium.now() + 3_600,
        fee=10**15 + 1,
    )
    project = bank_a.ledger.projects.create_project("p")
    bank_a.ledger.projects.invite(project, telecom.org_id)
    telecom.ledger.anchors.anchor_batch(secrets.token_bytes(32), 3, b"label".ljust(32, b"\0"))
    return task_id, grant


def test_views_and_receipts_match_web3(consortium: Consortium) -> None:
    task_id, grant_id = _activity(consortium)
    telecom = consortium.telecom.ledger
    client = telecom.client
    theirs = telecom.tasks.get_task(task_id).inputs[1]
    functions = [
        telecom.tasks.contract.functions.getTask(task_id),
        telecom.tasks.contract.functions.taskCount(),
        telecom.data.contract.functions.getDataset(theirs),
        telecom.data.contract.functions.ownerAndRetired(theirs),
        telecom.grants.contract.functions.getGrant(grant_id),
        telecom.orgs.contract.functions.getOrg(consortium.bank_a.org_id),
        telecom.orgs.contract.functions.rolesOf(client.address),
        telecom.projects.contract.functions.membersOf(1),
        telecom.projects.contract.functions.getProject(1),
        telecom.anchors.contract.functions.getBatch(1),
    ]
    for function in functions:
        assert client.call(function) == function.call({"from": client.address}), function.fn_name

    receipt = telecom.orgs.update_node(consortium.telecom.org_id, "http://x", bytes(32))
    assert receipt == client.w3.eth.get_transaction_receipt(receipt["transactionHash"])
    assert telecom.orgs.events(receipt, "NodeUpdated")  # events decode from it as before
    # a submission's receipt, with the events of several contracts
    _task, submitted = telecom.tasks.submit_task_receipt(
        spec_hash=secrets.token_bytes(32),
        kind=Kind.PSI,
        protocol=1,  # ecdh
        inputs=[consortium.dataset(consortium.telecom), theirs],
        grant_ids=[ZERO32, ZERO32],
        participants=[consortium.telecom.org_id, consortium.bank_a.org_id],
        deadline=consortium.now() + 3_600,
    )
    assert len(submitted["logs"]) > 1
    assert submitted == client.w3.eth.get_transaction_receipt(submitted["transactionHash"])
    assert dict(submitted) == dict(
        client.w3.eth.get_transaction_receipt(submitted["transactionHash"])
    )
    assert [type(log) for log in submitted["logs"]] == [AttributeDict] * len(submitted["logs"])


def test_indexed_rows_match_web3_decoding(consortium: Consortium, tmp_path: Path) -> None:
    task_id, _ = _activity(consortium)
    admin = consortium.admin
    w3 = admin.client.w3
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    EventIndexer(w3, admin.deployment, admin.artifacts, engine).sync()
    contracts: dict[str, Contract] = {
        address.lower(): w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=admin.artifacts[name].abi
        )
        for name, address in admin.deployment.addresses.items()
    }
    with Session(engine) as session:
        blocks = list(session.exec(select(ChainBlock)))
        transactions = list(session.exec(select(ChainTx)))
        events = list(session.exec(select(ChainEvent)))
    assert len(blocks) == w3.eth.block_number - admin.deployment.deploy_block + 1
    for row in blocks:
        block = w3.eth.get_block(row.number)
        assert (row.hash, row.parent_hash) == (
            block["hash"].to_0x_hex(),
            block["parentHash"].to_0x_hex(),
        )
        assert (row.timestamp, row.miner, row.gas_used, row.tx_count) == (
            block["timestamp"],
            block["miner"],
            block["gasUsed"],
            len(block["transactions"]),
        )

    decoded_calls = 0
    for row in transactions:
        tx = w3.eth.get_transaction(row.hash)
        assert (row.sender, row.to, row.nonce, row.value_wei) == (
            tx["from"],
            tx.get("to"),
            tx["nonce"],
            str(tx["value"]),
        )
        contract = contracts.get((tx.get("to") or "").lower())
        if contract is not None and row.function != "transfer":
            function, args = contract.decode_function_input(tx["input"])
            assert (row.function, row.args) == (function.fn_name, to_jsonable(args))
            decoded_calls += 1
    assert decoded_calls >= 10

    logs: dict[tuple[str, int], Any] = {}
    for log in w3.eth.get_logs(
        {
            "fromBlock": admin.deployment.deploy_block,
            "toBlock": "latest",
            "address": [Web3.to_checksum_address(a) for a in admin.deployment.addresses.values()],
        }
    ):
        logs[(log["transactionHash"].to_0x_hex(), log["logIndex"])] = log
    assert len(events) == len(logs) > 20
    for row in events:
        log = logs[(row.tx_hash, row.log_index)]
        contract = contracts[log["address"].lower()]
        expected = contract.events[row.event]().process_log(log)
        assert row.address == log["address"]
        assert row.block_hash == log["blockHash"].to_0x_hex()
        assert row.args == to_jsonable(dict(expected["args"])), row.event

    with Session(engine) as session:  # lookups through the references = JSON scans of events
        expected = events_named(session, TIMELINE_EVENTS, task_id=task_id)
        assert len(expected) >= 3
        assert [(e.block_number, e.tx_hash, e.contract, e.event, e.args) for e in expected] == [
            (e.block_number, e.tx_hash, e.contract, e.event, e.args)
            for e in timeline_events(session, task_id)
        ]
        assert timeline_events(session, task_id + 1) == []
        for dataset in {e.args["datasetId"] for e in events_named(session, ["GrantIssued"])}:
            grants = [e.args for e in events_named(session, ["GrantIssued"], dataset_id=dataset)]
            found = referring(session.connection(), "dataset", dataset, ["GrantIssued"])
            assert grants == [row.args for row in found]


def test_signing_matches_eth_account() -> None:
    account = dev_account(5)
    to = Web3.to_checksum_address("0x" + "ab" * 20)
    for tx in (
        {"to": to, "data": b"\x01" * 68, "value": 7, "gas": 90_000, "gasPrice": 10**9},
        {"data": b"\x60\x00", "value": 0, "gas": 500_000, "gasPrice": 3 * 10**9},
    ):
        signed_tx = {**tx, "chainId": 31337, "nonce": 12}
        expected = account.sign_transaction(signed_tx)
        assert sign(account, signed_tx) == (expected.hash, expected.raw_transaction)


def test_direct_legacy_signing_matches_eth_account_at_every_length_boundary() -> None:
    """The transactions the client signs itself (legacy, EIP-155) are eth-account's bytes, at
    RLP's length and integer boundaries (a byte below 0x80 is its own encoding; 55 and 56 byte
    strings and payloads switch to a long length) and with the recovery id of both parities."""
    account = dev_account(6)
    sizes = (0, 1, 55, 56, 57, 255, 256, 70_000)
    numbers = (0, 1, 127, 128, 255, 256, 2**64, 2**256 - 1)
    count = 0
    for index in range(64):
        size = sizes[index % len(sizes)]
        data = HexBytes(bytes([index * 37 % 256]) if size == 1 else secrets.token_bytes(size))
        tx: dict[str, Any] = {
            "data": data,
            "value": numbers[index % len(numbers)],
            "gas": (21_000, 90_000, 30_000_000)[index % 3],
            "gasPrice": numbers[(index // 3) % 5],
            "chainId": (1, 31337, 2**40)[index % 3],
            "nonce": numbers[(index // 5) % 6],
        }
        if index % 4:
            tx["to"] = Web3.to_checksum_address("0x" + secrets.token_hex(20))
        assert _is_legacy(tx)
        expected = account.sign_transaction(tx)
        assert sign(account, tx) == (expected.hash, expected.raw_transaction), tx
        count += 1
    assert count == 64
    # anything else (a lower-case address, an EIP-1559 fee) takes eth-account's own path
    assert not _is_legacy({**tx, "to": "0x" + "ab" * 20})
    assert not _is_legacy({**tx, "maxFeePerGas": 1})


def test_direct_call_data_matches_web3_or_falls_back(consortium: Consortium) -> None:
    ledger = consortium.telecom.ledger
    dataset, grant = secrets.token_bytes(32), secrets.token_bytes(32)
    calls: list[tuple[Any, str, tuple[Any, ...]]] = [
        (
            ledger.tasks,
            "submitTask",
            (dataset, 1, 2, [dataset, grant], [ZERO32, grant], [1, 2], 99),
        ),
        (ledger.tasks, "getTask", (7,)),
        (ledger.data, "getDataset", (dataset,)),
        (ledger.grants, "isUsable", (grant, 3, dataset, int(Kind.PSI))),
        (ledger.anchors, "anchorBatch", (grant, 4, dataset)),
    ]
    for facade, name, args in calls:
        encoded = facade._encoded(name, args)
        assert encoded is not None, name
        expected = facade.contract.functions[name](*args)._encode_transaction_data()
        assert encoded[1] == bytes.fromhex(expected[2:]), name
    # web3's own path (and its checks) where an address is involved or the codec refuses
    assert ledger.orgs._encoded("rolesOf", (ledger.client.address.lower(),)) is None
    assert ledger.tasks._encoded("getTask", ("7",)) is None
    assert ledger.data._encoded("getDataset", (dataset[:5],)) is None
