"""Engine and sessions for a node database (SQLite file by default, PostgreSQL by URL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, event
from sqlmodel import create_engine

from privledger.store.migrate import upgrade

# Connections a process keeps to a PostgreSQL server, and more it may open for a while. A
# request holds one for its own session and may open another meanwhile (a grant's lookup, the
# columns' check), so a pool smaller than twice the requests in flight closed and opened
# connections on every request: a server process started and a password exchange each time
# (SCRAM), which cost the submission bench more CPU in PostgreSQL than its queries did.
POOL_SIZE = 20
POOL_OVERFLOW = 20
# The API runs few enough requests' code at once (api.threads.REQUEST_THREADS) that each may
# hold two connections, and the rest of the pool is the worker's, the indexer's, the audit
# writer's. A connection not free within the timeout is a 503 to the caller, not a 500.
BACKGROUND_CONNECTIONS = 8
REQUEST_CONNECTIONS = 2
POOL_TIMEOUT_S = 10.0
_POOL = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_timeout": POOL_TIMEOUT_S}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    """An engine on a database migrated to the newest schema; SQLite runs in WAL mode, so readers
    never block the writer."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **_POOL)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True, **_POOL)
    upgrade(engine)
    return engine
