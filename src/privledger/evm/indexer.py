"""Copy the ledger's events into the node database, incrementally and restart-safe.

The cursor (next block to read) is stored in the same database transaction as the events it
covers, so a crash never skips or duplicates a block. Only blocks at least ``confirmations`` deep
are read; on anvil and on a QBFT network (immediate finality) zero is right.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from sqlalchemy import Engine
from sqlmodel import Session
from web3 import Web3
from web3.contract.contract import ContractEvent
from web3.types import EventData, LogReceipt

from privledger.evm.artifacts import Artifact
from privledger.evm.deploy import Deployment
from privledger.store.models import ChainEvent, IndexerCursor

logger = logging.getLogger(__name__)


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
    """Reads every event of one deployment into ``ChainEvent`` rows."""

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
        for name, address in deployment.addresses.items():
            contract = w3.eth.contract(
                address=Web3.to_checksum_address(address), abi=artifacts[name].abi
            )
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
            stored += self._store(logs, end + 1)
            start = end + 1
        return stored

    def _store(self, logs: list[LogReceipt], next_block: int) -> int:
        rows = [row for row in (self._decode(log) for log in logs) if row is not None]
        with Session(self.engine) as session:
            session.add_all(rows)
            cursor = session.get(IndexerCursor, self.cursor_name)
            if cursor is None:
                cursor = IndexerCursor(name=self.cursor_name, next_block=next_block)
            cursor.next_block = next_block
            session.add(cursor)
            session.commit()
        return len(rows)

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
