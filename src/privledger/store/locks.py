"""A lock that the threads of every process on one PostgreSQL database take in turn: a session
advisory lock, named by a string, behind a local lock (so a process waits on the database with
one connection at most)."""

from __future__ import annotations

import hashlib
import threading
from types import TracebackType

from sqlalchemy import Connection, Engine, text


def lock_key(name: str) -> int:
    """The signed 64-bit key PostgreSQL's advisory locks take, derived from ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class AdvisoryLock:
    def __init__(self, engine: Engine, name: str) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("advisory locks are PostgreSQL's")
        self.engine = engine
        self.key = lock_key(name)
        self._local = threading.Lock()
        self._connection: Connection | None = None

    def __enter__(self) -> AdvisoryLock:
        self._local.acquire()
        try:
            connection = self.engine.connect()
            try:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
                connection.commit()
            except BaseException:
                connection.close()
                raise
        except BaseException:
            self._local.release()
            raise
        self._connection = connection
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        try:
            if connection is not None:
                with connection:  # closing returns it to the pool; the unlock must come first
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                    connection.commit()
        finally:
            self._local.release()
