"""Copy the ledger into the node database, incrementally and restart-safe: every block from the
deployment on, its transactions with their calls decoded from our ABIs, and the contracts' events.

The cursor (next block to read) is stored in the same database transaction as the rows it covers,
so a crash never skips or duplicates a block. Only blocks at least ``confirmations`` deep are read;
on anvil and on a QBFT network (immediate finality) zero is right.

Each call and event also leaves ``ChainRef`` rows naming the tasks, datasets, grants, orgs, batches
and accounts in its arguments: the explorer's search index.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel
from web3 import Web3
from web3.contract.contract import Contract, ContractEvent
from web3.types import BlockData, EventData, LogReceipt, TxData, TxReceipt

from privledger.evm.artifacts import Artifact
from privledger.evm.deploy import Deployment
from privledger.store.models import ChainBlock, ChainEvent, ChainRef, ChainTx, IndexerCursor

logger = logging.getLogger(__name__)


# argument name in our ABIs -> what it refers to; list-valued arguments refer to each item
REF_KINDS = {
    "taskId": "task",
    "datasetId": "dataset",
    "datasetIds": "dataset",
    "inputs": "dataset",
    "parents": "dataset",
    "grantId": "grant",
    "grantIds": "grant",
    "orgId": "org",
    "org": "org",
    "ownerOrg": "org",
    "granteeOrg": "org",
    "requesterOrg": "org",
    "payeeOrg": "org",
    "payerOrg": "org",
    "payeeOrgs": "org",
    "participants": "org",
    "batchId": "batch",
    "account": "account",
    "admin": "account",
    "approver": "account",
    "to": "account",
}


def ref_value(kind: str, value: Any) -> str:
    """The canonical text of a reference: ids in decimal, hashes in lower-case hex, addresses
    checksummed."""
    if kind == "account":
        return to_checksum_address(str(value))
    if kind in ("dataset", "grant"):
        return str(value).lower()
    return str(int(value))


def references(args: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, value) of everything ``args`` (JSON-ready, see ``to_jsonable``) refers to."""
    found = []
    for name, value in args.items():
        kind = REF_KINDS.get(name)
        if kind is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if kind in ("dataset", "grant") and not int(str(item), 16):
                continue  # the zero id stands for "none" (e.g. no grant: own data)
            found.append((kind, ref_value(kind, item)))
    return list(dict.fromkeys(found))


def to_jsonable(value: Any) -> Any:
    """Event arguments as JSON: bytes as 0x-hex, tuples as lists, big ints as-is."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    return value


class EventIndexer:
    """Reads every block, transaction and event of one deployment into the database."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        artifacts: dict[str, Artifact],
        engine: Engine,
        *,
        chunk_blocks: int = 2_000,
        confirmations: int = 0,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.engine = engine
        self.chunk_blocks = chunk_blocks
        self.confirmations = confirmations
        self._lock = threading.Lock()  # one sync at a time per indexer (worker and API share it)
        self.cursor_name = (
            f"{deployment.chain_id}:{deployment.genesis_hash}:{deployment.deploy_block}"
        )
        self._events: dict[tuple[str, bytes], tuple[str, ContractEvent]] = {}
        self._contracts: dict[str, tuple[str, Contract]] = {}  # lower-case address -> contract
        for name, address in deployment.addresses.items():
            contract = w3.eth.contract(
                address=Web3.to_checksum_address(address), abi=artifacts[name].abi
            )
            self._contracts[address.lower()] = (name, contract)
            for entry in artifacts[name].abi:
                if entry.get("type") == "event" and not entry.get("anonymous", False):
                    topic = event_abi_to_log_topic(entry)  # type: ignore[arg-type]
                    event = contract.events[entry["name"]]()
                    self._events[(address.lower(), bytes(topic))] = (name, event)

    def next_block(self) -> int:
        with Session(self.engine) as session:
            cursor = session.get(IndexerCursor, self.cursor_name)
            return cursor.next_block if cursor is not None else self.deployment.deploy_block

    def sync(self) -> int:
        """Read all new confirmed blocks; returns how many events were stored."""
        with self._lock:
            return self._sync()

    def _sync(self) -> int:
        head = self.w3.eth.block_number - self.confirmations
        start = self.next_block()
        stored = 0
        while start <= head:
            end = min(start + self.chunk_blocks - 1, head)
            logs = self.w3.eth.get_logs(
                {
                    "fromBlock": start,
                    "toBlock": end,
                    "address": [
                        Web3.to_checksum_address(a) for a in self.deployment.addresses.values()
                    ],
                }
            )
            blocks: list[SQLModel] = []
            for number in range(start, end + 1):
                blocks.extend(self._block(number))
            stored += self._store(logs, blocks, end + 1)
            start = end + 1
        return stored

    def _store(self, logs: list[LogReceipt], blocks: list[SQLModel], next_block: int) -> int:
        rows = [row for row in (self._decode(log) for log in logs) if row is not None]
        refs = [
            ChainRef(
                kind=kind,
                value=value,
                name=row.event,
                tx_hash=row.tx_hash,
                log_index=row.log_index,
                block_number=row.block_number,
            )
            for row in rows
            for kind, value in references(row.args)
        ]
        with Session(self.engine) as session:
            session.add_all(blocks)
            session.add_all(rows)
            session.add_all(refs)
            cursor = session.get(IndexerCursor, self.cursor_name)
            if cursor is None:
                cursor = IndexerCursor(name=self.cursor_name, next_block=next_block)
            cursor.next_block = next_block
            session.add(cursor)
            session.commit()
        return len(rows)

    def _block(self, number: int) -> list[SQLModel]:
        """The block ``number``, its transactions and the references of their calls."""
        block: BlockData = self.w3.eth.get_block(number, full_transactions=True)
        transactions = block["transactions"]
        receipts = self.w3.eth.get_block_receipts(number) if transactions else []
        rows: list[SQLModel] = [
            ChainBlock(
                number=number,
                hash=HexBytes(block["hash"]).to_0x_hex(),
                parent_hash=HexBytes(block["parentHash"]).to_0x_hex(),
                timestamp=block["timestamp"],
                miner=block["miner"],
                gas_used=block["gasUsed"],
                tx_count=len(transactions),
            )
        ]
        for tx, receipt in zip(transactions, receipts, strict=True):
            row = self._transaction(cast(TxData, tx), receipt)  # full_transactions=True
            rows.append(row)
            rows.extend(
                ChainRef(
                    kind=kind,
                    value=value,
                    name=row.function,
                    tx_hash=row.hash,
                    log_index=-1,
                    block_number=number,
                )
                for kind, value in references(row.args)
            )
        return rows

    def _transaction(self, tx: TxData, receipt: TxReceipt) -> ChainTx:
        to = tx.get("to")
        target = (to or receipt.get("contractAddress") or "").lower()
        known = self._contracts.get(target)
        data = HexBytes(tx["input"])
        contract, function, args = (known[0] if known else None), "transfer", {}
        if to is None:
            function = "constructor"
        elif known is not None and data:
            try:
                called, decoded = known[1].decode_function_input(data)
                function, args = called.fn_name, decoded
            except ValueError:  # not one of the contract's functions
                function = data[:4].to_0x_hex()
        elif data:
            function = data[:4].to_0x_hex()
        return ChainTx(
            hash=HexBytes(tx["hash"]).to_0x_hex(),
            block_number=tx["blockNumber"],
            tx_index=tx["transactionIndex"],
            sender=tx["from"],
            to=to,
            nonce=tx["nonce"],
            value_wei=str(tx["value"]),
            contract=contract,
            function=function,
            args=to_jsonable(args),
            status=receipt["status"],
            gas_used=receipt["gasUsed"],
        )

    def _decode(self, log: LogReceipt) -> ChainEvent | None:
        if not log["topics"]:
            return None
        key = (log["address"].lower(), bytes(log["topics"][0]))
        known = self._events.get(key)
        if known is None:
            logger.warning("unknown event at %s log %d", log["transactionHash"], log["logIndex"])
            return None
        contract_name, event = known
        decoded: EventData = event.process_log(log)
        return ChainEvent(
            block_number=log["blockNumber"],
            block_hash=HexBytes(log["blockHash"]).to_0x_hex(),
            tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
            log_index=log["logIndex"],
            contract=contract_name,
            address=log["address"],
            event=decoded["event"],
            args=to_jsonable(dict(decoded["args"])),
        )
