"""Copy the ledger into the node database, incrementally and restart-safe: every block from the
deployment on that holds transactions, its transactions with their calls decoded from our ABIs,
and the contracts' events.

Empty blocks are read but not stored: a QBFT chain seals one every few seconds even when idle
(every minute with ``emptyblockperiodseconds``), and every node would keep each one. The cursor
(next block to read, and the hash of the block before it, empty or not) is stored in the same
database transaction as the rows it covers, so a crash never skips or duplicates a block. Only
blocks at least ``confirmations`` deep are read; on anvil and on a QBFT network (immediate
finality) zero is right. When the next block's parent is not the block read last (a
reorganisation, or a chain reverted to an earlier state), the index goes back to the newest
stored block the chain still holds and reads the blocks after it again; a chain that lost the
deployment's own block raises :class:`ChainReset`. A reorganisation that leaves the head at the
same height (anvil's ``anvil_reorg``) is seen by the head's hash. Whoever acts on what the chain
held (a node's worker: its transactions, anchors and settlements) learns what was forgotten from
the :class:`Forgotten` given to each listener of :meth:`EventIndexer.on_rewind`; a process
without them (a node's extra API processes) leaves the rewind to the one that has them.

Each call and event also leaves ``ChainRef`` rows naming the tasks, datasets, grants, orgs, batches
and accounts in its arguments: the explorer's search index. Whoever waits on a task the stored
events name is woken (:mod:`privledger.store.watch`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from eth_abi.exceptions import DecodingError
from hexbytes import HexBytes
from sqlalchemy import Engine, Table, bindparam, delete, func, select, update
from sqlmodel import SQLModel
from web3 import Web3

from privledger.evm.artifacts import Artifact
from privledger.evm.deploy import Deployment
from privledger.evm.errors import ChainError
from privledger.evm.rpc import (
    EventCodec,
    FunctionCodec,
    JsonRpc,
    RpcError,
    checksum_address,
    to_bytes,
    to_int,
)
from privledger.store.models import ChainBlock, ChainEvent, ChainRef, ChainTx, IndexerCursor
from privledger.store.watch import task_changes

logger = logging.getLogger(__name__)

BATCH_BLOCKS = 50  # blocks fetched per JSON-RPC batch (two requests each)


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
        return checksum_address(str(value))
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


def cursor_name(deployment: Deployment) -> str:
    """The name of the index cursor of one deployment."""
    return f"{deployment.chain_id}:{deployment.genesis_hash}:{deployment.deploy_block}"


class ChainReset(ChainError):
    """The chain no longer holds the deployment the index follows (an API answers 503)."""


# blocks a request's query for one kind of event may span before it reads how far the index got
STALE_CURSOR_BLOCKS = 32


@dataclass(frozen=True)
class Forgotten:
    """What a rewind took out of the index: blocks from ``fork`` on, the tasks their events
    named and their transactions' hashes; events stored from now on have ids above
    ``last_event_id`` (the newest event kept)."""

    fork: int
    tasks: frozenset[int]
    transactions: frozenset[str]
    last_event_id: int


class EventIndexer:
    """Reads every block, transaction and event of one deployment into the database.

    Blocks are fetched with their transactions and receipts in batched JSON-RPC requests
    (:class:`privledger.evm.rpc.JsonRpc`) and the contracts' events are taken from the receipts;
    calls and events are decoded with codecs computed once per function and event, giving the same
    rows web3's ``decode_function_input`` and ``process_log`` give, for a fraction of the CPU: every
    node indexes every block, so this is paid once per block per node.
    """

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        artifacts: dict[str, Artifact],
        engine: Engine,
        *,
        confirmations: int = 0,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.engine = engine
        self.confirmations = confirmations
        self._rpc = JsonRpc(w3)
        # one sync at a time per indexer (worker and API share it)
        self._lock: AbstractContextManager[object] = threading.Lock()
        self._seen_next = 0  # the stored cursor as last seen (a rewind moves it back)
        self._rewinds = 0  # how many this indexer made
        self._seen_head: tuple[str, str] | None = None  # number and hash of the head synced to
        self._rewind_listeners: list[Callable[[Forgotten], None]] = []
        self._rewinds_here = True
        self.cursor_name = cursor_name(deployment)
        self._events: dict[tuple[str, bytes], tuple[str, EventCodec]] = {}
        self._topics: dict[tuple[str, str], tuple[str, str]] = {}  # -> (address, topic)
        # lower-case address -> contract name and its functions by selector
        self._contracts: dict[str, tuple[str, dict[bytes, FunctionCodec]]] = {}
        for name, address in deployment.addresses.items():
            functions: dict[bytes, FunctionCodec] = {}
            for entry in artifacts[name].abi:
                if entry.get("type") == "function":
                    codec = FunctionCodec.of(entry)
                    functions[codec.selector] = codec
                elif entry.get("type") == "event" and not entry.get("anonymous", False):
                    event = EventCodec.of(entry)
                    self._events[(address.lower(), event.topic)] = (name, event)
                    self._topics[(name, event.name)] = (address, "0x" + event.topic.hex())
            self._contracts[address.lower()] = (name, functions)

        cursors = _table(IndexerCursor)  # the cursor's statements, built once
        self._read_cursor = select(cursors.c.next_block).where(cursors.c.name == self.cursor_name)
        self._read_last_hash = select(cursors.c.last_hash).where(cursors.c.name == self.cursor_name)
        self._move_cursor = (
            update(cursors)
            .where(cursors.c.name == self.cursor_name)
            .values(next_block=bindparam("next_block"), last_hash=bindparam("last_hash"))
        )

    def share_database(self, lock: AbstractContextManager[object]) -> None:
        """Sync under ``lock``, which every process indexing into this database takes (a node's
        API processes): one stores a block range while the others wait, then read the moved
        cursor and find the range stored."""
        self._lock = lock

    def on_rewind(self, listener: Callable[[Forgotten], None]) -> None:
        """Call ``listener`` (in the syncing thread, with the rows already deleted) whenever a
        sync forgets blocks the chain no longer holds."""
        self._rewind_listeners.append(listener)

    def leave_rewinds(self) -> None:
        """Never forget blocks here: a sync that finds the chain changed stores nothing and
        leaves the rewind to the node's process whose worker listens (``on_rewind``), which
        syncs every ``worker_interval_s``."""
        self._rewinds_here = False

    def next_block(self) -> int:
        with self.engine.connect() as connection:
            stored = connection.execute(self._read_cursor).scalar()
        return int(stored) if stored is not None else self.deployment.deploy_block

    def sync(self) -> int:
        """Read all new confirmed blocks; returns how many events this call stored.

        When it returns, every block confirmed before the call is in the database. Many threads
        sync (each API request, the worker): one at a time reads and stores, and a caller whose
        blocks another sync stored meanwhile returns at once instead of queueing for the lock.
        """
        latest = self._latest()
        if latest == self._seen_head:
            return 0  # nothing new: no lock, no cursor read
        with self._lock:
            if latest == self._seen_head:
                return 0  # the sync we waited for covered our blocks
            latest = self._latest()
            try:
                stored = self._sync(to_int(latest[0]) - self.confirmations)
            except _RewindElsewhere:
                return 0
            self._seen_head = latest
            return stored

    def sync_for(self, contract: str, event: str) -> int | None:
        """Make sure every ``event`` of ``contract`` mined so far is in the database, indexing
        the new blocks only when one of them holds such an event (asked with one ``eth_getLogs``
        over the blocks not indexed yet): a request that needs one kind of event fresh does not
        index every new block itself -- the worker's sync reads them all, many at a time.

        Returns the block from which the chain holds no such event, when it asked and found
        none (so a caller that read the stored events while :meth:`indexed_below` was at least
        that block has read them all), else None."""
        first = self._seen_next
        if first == 0:  # nothing indexed by this process yet
            self.sync()
            return None
        address, topic = self._topics[(contract, event)]
        query = {
            "fromBlock": hex(first),
            "toBlock": "latest",
            "address": address,
            "topics": [topic],
        }
        head, logs = self._rpc.batch([("eth_blockNumber", []), ("eth_getLogs", [query])])
        if isinstance(head, RpcError):
            raise head
        if to_int(head) - self.confirmations >= first and logs != []:
            self.sync()  # such an event (or an answer that is not a list): read the new blocks
            return None
        if to_int(head) - first > STALE_CURSOR_BLOCKS:
            # another thread or process indexes (an API process beside the worker's): start the
            # next query where it got to, or its range, and the chain's work, grows with every
            # block; unless a rewind here moved the cursor back meanwhile
            rewinds, stored = self._rewinds, self.next_block()
            if rewinds == self._rewinds:
                self._seen_next = max(self._seen_next, stored)
        # none in the blocks asked for, or none asked for (all indexed: the range is empty)
        return first if logs == [] or to_int(head) < first else None

    def indexed_below(self) -> int:
        """The block below which this indexer last saw every block stored (0: none yet)."""
        return self._seen_next

    def _latest(self) -> tuple[str, str]:
        """The number and hash of the chain's newest block (a reorganisation to the same height
        changes the hash only)."""
        block = self._rpc.request("eth_getBlockByNumber", ["latest", False])
        return str(block["number"]), str(block["hash"])

    def _sync(self, head: int) -> int:
        start = self.next_block()
        if head <= start - 1:  # nothing new on the chain, or it went back: does it still hold
            start = self._rewind(start, behind=head < start - 1)  # the block read last?
        stored = 0
        while start <= head:
            last = min(start + BATCH_BLOCKS - 1, head)
            rows = self._blocks(start, last)
            if not self._continues(start, rows.first_parent):
                start = self._rewind(start)
                continue
            stored += self._store(rows, last + 1)
            start = last + 1
        self._seen_next = start
        return stored

    def _stored_hash(self, number: int) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(_table(ChainBlock).c.hash).where(_table(ChainBlock).c.number == number)
            ).scalar()

    def _read_hash(self, number: int) -> str | None:
        """The hash block ``number`` had when it was read: the cursor's, for the block before
        the next one, else the stored block's (None: not known, an empty block)."""
        if number == self.next_block() - 1:
            with self.engine.connect() as connection:
                last = connection.execute(self._read_last_hash).scalar()
            if last is not None:
                return str(last)
        return self._stored_hash(number)

    def _continues(self, number: int, parent_hash: str) -> bool:
        """Whether block ``number`` (its parent ``parent_hash``) follows the blocks read."""
        if number <= self.deployment.deploy_block:
            return True
        read = self._read_hash(number - 1)
        return read is None or read == parent_hash

    def _on_chain(self, number: int, block_hash: str | None) -> bool:
        block = self._rpc.request("eth_getBlockByNumber", [hex(number), False])
        return block is not None and _hex(block["hash"]) == block_hash

    def _rewind(self, start: int, *, behind: bool = False) -> int:
        """Forget the stored blocks after the newest one the chain still holds (walking back
        from ``start``), with their transactions, events and references, and move the cursor to
        the block after it; that block's number. Waiters on the tasks those events named are
        woken, and the listeners told. A block read before its hash was kept is taken as held,
        unless the chain is ``behind`` it."""
        deploy_block = self.deployment.deploy_block
        read = self._read_hash(start - 1)
        if start <= deploy_block or (read is None and not behind):
            return start
        if self._on_chain(start - 1, read):
            return start
        if not self._rewinds_here:
            raise _RewindElsewhere
        blocks = _table(ChainBlock)
        with self.engine.connect() as connection:
            stored = connection.execute(
                select(blocks.c.number, blocks.c.hash)
                .where(blocks.c.number < start - 1, blocks.c.number >= deploy_block)
                .order_by(blocks.c.number.desc())
            ).all()
        kept = next(((n, h) for n, h in stored if self._on_chain(n, h)), None)
        if kept is None:
            raise ChainReset(
                f"the chain no longer holds block {deploy_block}, where the deployment this "
                "node follows was made: the chain was reset or replaced"
            )
        fork, last_hash = int(kept[0]) + 1, str(kept[1])
        logger.warning("the chain no longer holds blocks %d..%d: indexing again", fork, start - 1)
        refs, events, txs = _table(ChainRef), _table(ChainEvent), _table(ChainTx)
        with self.engine.begin() as connection:
            tasks = connection.execute(
                select(refs.c.value).where(refs.c.kind == "task", refs.c.block_number >= fork)
            ).scalars()
            forgotten_tasks = frozenset(int(value) for value in tasks)
            hashes = connection.execute(select(txs.c.hash).where(txs.c.block_number >= fork))
            forgotten_txs = frozenset(str(tx_hash) for tx_hash in hashes.scalars())
            for table in (refs, events, txs):
                connection.execute(delete(table).where(table.c.block_number >= fork))
            connection.execute(delete(blocks).where(blocks.c.number >= fork))
            connection.execute(self._move_cursor, {"next_block": fork, "last_hash": last_hash})
            last_event = connection.execute(select(func.max(events.c.id))).scalar()
        self._seen_next = fork
        self._rewinds += 1
        forgotten = Forgotten(fork, forgotten_tasks, forgotten_txs, int(last_event or 0))
        for listener in self._rewind_listeners:
            listener(forgotten)
        task_changes.notify(forgotten_tasks)
        return fork

    def _blocks(self, first: int, last: int) -> _Rows:
        """Blocks ``first`` to ``last`` with their transactions, events and references."""
        calls: list[tuple[str, list[Any]]] = []
        for number in range(first, last + 1):
            calls.append(("eth_getBlockByNumber", [hex(number), True]))
            calls.append(("eth_getBlockReceipts", [hex(number)]))
        answers = self._rpc.batch(calls)
        for answer in answers:
            if isinstance(answer, RpcError):
                raise answer
        rows = _Rows()
        for index, number in enumerate(range(first, last + 1)):
            block, receipts = answers[2 * index], answers[2 * index + 1] or []
            if block is None:
                raise LookupError(f"block {number} is not on the chain (yet)")
            if number == first:
                rows.first_parent = _hex(block["parentHash"])
            rows.last_hash = _hex(block["hash"])
            self._block(number, block, receipts, rows)
        for receipts in answers[1::2]:
            for receipt in receipts or []:
                for log in receipt.get("logs") or []:
                    event = self._decode(log)
                    if event is not None:
                        rows.events.append(event)
        return rows

    def _store(self, rows: _Rows, next_block: int) -> int:
        """Insert the rows and move the cursor, in one database transaction."""
        event_refs = [
            {
                "kind": kind,
                "value": value,
                "name": event["event"],
                "tx_hash": event["tx_hash"],
                "log_index": event["log_index"],
                "block_number": event["block_number"],
            }
            for event in rows.events
            for kind, value in references(event["args"])
        ]
        with self.engine.begin() as connection:  # one transaction: rows and cursor together
            for table, values in (
                (_table(ChainBlock), rows.blocks),
                (_table(ChainTx), rows.transactions),
                (_table(ChainEvent), rows.events),
                (_table(ChainRef), rows.refs + event_refs),
            ):
                if values:  # executemany on the table: the same rows without ORM objects
                    connection.execute(table.insert(), values)
            cursor = {"next_block": next_block, "last_hash": rows.last_hash}
            moved = connection.execute(self._move_cursor, cursor)
            if moved.rowcount == 0:
                connection.execute(
                    _table(IndexerCursor).insert(), {"name": self.cursor_name, **cursor}
                )
        task_changes.notify({int(ref["value"]) for ref in event_refs if ref["kind"] == "task"})
        return len(rows.events)

    def _block(
        self, number: int, block: dict[str, Any], receipts: list[dict[str, Any]], rows: _Rows
    ) -> None:
        """The block ``number``, its transactions and the references of their calls; an empty
        block is not stored (but the deployment's, where the index starts)."""
        transactions = block["transactions"]
        if not transactions and number != self.deployment.deploy_block:
            return
        rows.blocks.append(
            {
                "number": number,
                "hash": _hex(block["hash"]),
                "parent_hash": _hex(block["parentHash"]),
                "timestamp": to_int(block["timestamp"]),
                "miner": checksum_address(block["miner"]),
                "gas_used": to_int(block["gasUsed"]),
                "tx_count": len(transactions),
            }
        )
        by_hash = {_hex(receipt["transactionHash"]): receipt for receipt in receipts}
        if len(by_hash) != len(transactions):
            raise LookupError(f"block {number}: {len(receipts)} receipts, {len(transactions)} txs")
        for tx in transactions:
            row = self._transaction(tx, by_hash[_hex(tx["hash"])])
            rows.transactions.append(row)
            rows.refs.extend(
                {
                    "kind": kind,
                    "value": value,
                    "name": row["function"],
                    "tx_hash": row["hash"],
                    "log_index": -1,
                    "block_number": number,
                }
                for kind, value in references(row["args"])
            )

    def _transaction(self, tx: dict[str, Any], receipt: dict[str, Any]) -> dict[str, Any]:
        """A ``ChainTx`` row: the call decoded against the contract it went to, if ours."""
        to = checksum_address(tx["to"]) if tx.get("to") else None
        target = (tx.get("to") or receipt.get("contractAddress") or "").lower()
        known = self._contracts.get(target)
        data = to_bytes(tx.get("input"))
        contract, function, args = (known[0] if known else None), "transfer", {}
        if to is None:
            function = "constructor"
        elif known is not None and data:
            codec = known[1].get(bytes(data[:4]))
            if codec is None:  # not one of the contract's functions
                function = HexBytes(data[:4]).to_0x_hex()
            else:
                try:
                    function, args = codec.name, codec.decode_input(self.w3, data)
                except DecodingError:
                    function = HexBytes(data[:4]).to_0x_hex()
        elif data:
            function = HexBytes(data[:4]).to_0x_hex()
        return {
            "hash": _hex(tx["hash"]),
            "block_number": to_int(tx["blockNumber"]),
            "tx_index": to_int(tx["transactionIndex"]),
            "sender": checksum_address(tx["from"]),
            "to": to,
            "nonce": to_int(tx["nonce"]),
            "value_wei": str(to_int(tx["value"])),
            "contract": contract,
            "function": function,
            "args": to_jsonable(args),
            "status": to_int(receipt["status"]),
            "gas_used": to_int(receipt["gasUsed"]),
        }

    def receipt_events(self, receipt: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The ``ChainEvent`` rows of a transaction's receipt, as the indexer will store them."""
        found = (self._decode(dict(log)) for log in receipt["logs"])
        return [event for event in found if event is not None]

    def _decode(self, log: dict[str, Any]) -> dict[str, Any] | None:
        """A ``ChainEvent`` row for a log of one of our contracts, else None."""
        address = str(log["address"]).lower()
        if address not in self._contracts or not log["topics"]:
            return None
        topics = [to_bytes(topic) for topic in log["topics"]]
        known = self._events.get((address, topics[0]))
        if known is None:
            logger.warning("unknown event at %s log %s", log["transactionHash"], log["logIndex"])
            return None
        contract_name, event = known
        return {
            "block_number": to_int(log["blockNumber"]),
            "block_hash": _hex(log["blockHash"]),
            "tx_hash": _hex(log["transactionHash"]),
            "log_index": to_int(log["logIndex"]),
            "contract": contract_name,
            "address": checksum_address(log["address"]),
            "event": event.name,
            "args": to_jsonable(event.decode(self.w3, topics, to_bytes(log["data"]))),
        }


class _RewindElsewhere(Exception):
    """The chain changed, and this process leaves the rewind to another."""


@dataclass
class _Rows:
    """Rows of some blocks, as column values for executemany inserts."""

    blocks: list[dict[str, Any]] = field(default_factory=list)  # those with transactions
    transactions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    refs: list[dict[str, Any]] = field(default_factory=list)  # of the calls; events' added later
    first_parent: str = ""  # the parent hash of the first block read
    last_hash: str = ""  # the hash of the last block read


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def _hex(value: str | bytes) -> str:
    """A hash as lower-case 0x-hex, as ``HexBytes(...).to_0x_hex()`` gives it."""
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()  # as JSON-RPC answers carry it
    return HexBytes(value).to_0x_hex()
