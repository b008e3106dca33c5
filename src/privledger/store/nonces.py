"""Nonces shared by the processes of one node: a row per account in the node's PostgreSQL
database, locked ``FOR UPDATE`` while a transaction is signed and handed to the chain.

A node with several API processes signs with the same accounts from each of them; a counter per
process would give two transactions one nonce. The row lock is held exactly as the in-process
nonce lock of :mod:`privledger.evm.client` is (sign, write the send, never while the receipt is
awaited), so transactions of all processes stay pipelined and their nonces gapless. The threads
of one process queue on a local lock first, so each process holds at most one database
connection per account waiting for the row. A refusal resynchronises as in one process: the row
is emptied, and the next holder reads the chain's pending count under the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, Table, select, update
from sqlalchemy.dialects.postgresql import insert

from privledger.evm.client import NonceSlot
from privledger.store.models import ChainNonce

_TABLE: Table = ChainNonce.__table__  # type: ignore[attr-defined]


class SharedNonces:
    """A :class:`privledger.evm.client.NonceBook` kept in a PostgreSQL database."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("nonces are shared between processes through PostgreSQL only")
        self.engine = engine
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._read = select(_TABLE.c.next_nonce).with_for_update()
        self._create = insert(_TABLE).on_conflict_do_nothing(index_elements=["address"])

    def _local_lock(self, address: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(address, threading.Lock())

    @contextmanager
    def held(self, address: str) -> Iterator[NonceSlot]:
        with self._local_lock(address), self.engine.begin() as connection:
            read = self._read.where(_TABLE.c.address == address)
            row = connection.execute(read).first()
            if row is None:  # the account's first transaction on this database
                connection.execute(self._create, {"address": address, "next_nonce": None})
                row = connection.execute(read).one()
            slot = NonceSlot(row.next_nonce)
            try:
                yield slot
            finally:  # a refusal leaves None (resynchronise), written back like a nonce
                if slot.value != row.next_nonce:
                    connection.execute(
                        update(_TABLE)
                        .where(_TABLE.c.address == address)
                        .values(next_nonce=slot.value)
                    )
