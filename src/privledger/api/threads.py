"""How many requests' code the API runs at once.

Routes and dependencies written as plain functions run in threads (anyio's default limiter, 40
of them unless told otherwise). A request holds its session's database connection while its code
runs and may open a second one meanwhile (the index, a grant's lookup): with more threads than
half the pool, a crowd of callers each holding one connection and waiting for a second starved
the pool until its timeout, and every one of them got a 500. With at most
:data:`REQUEST_THREADS` running, every request gets its connections and the others queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from starlette.types import ASGIApp

from privledger.store.db import (
    BACKGROUND_CONNECTIONS,
    POOL_OVERFLOW,
    POOL_SIZE,
    REQUEST_CONNECTIONS,
)

REQUEST_THREADS = (POOL_SIZE + POOL_OVERFLOW - BACKGROUND_CONNECTIONS) // REQUEST_CONNECTIONS


@asynccontextmanager
async def bounded_request_threads(_app: ASGIApp) -> AsyncIterator[None]:
    """A lifespan: the threads of the event loop that serves the app, bounded."""
    to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS
    yield
