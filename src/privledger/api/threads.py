"""How many requests' code the API runs at once.

Routes and dependencies written as plain functions run in threads (anyio's default limiter, 40
of them unless told otherwise). A request holds its session's database connection while its code
runs and may open a second one meanwhile (the index, a grant's lookup): with more threads than
half the pool, a crowd of callers each holding one connection and waiting for a second starved
the pool until its timeout, and every one of them got a 500. With at most
:data:`REQUEST_THREADS` running, every request gets its connections and the others queue.

A task submission waits for its block (half a block period on average, on a chain that has one)
in a thread of another kind (:func:`chain_waits`, :data:`CHAIN_WAIT_THREADS` of them), holding no
database connection meanwhile: otherwise the request threads would bound in-flight submissions,
16 per block period and process. That thread then writes the task's row, with one connection
taken and handed back at once (never waiting for a second while it holds one): these threads
only queue for the pool, they cannot starve it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from weakref import WeakKeyDictionary

from anyio import CapacityLimiter, to_thread
from starlette.types import ASGIApp

from privledger.store.db import (
    BACKGROUND_CONNECTIONS,
    POOL_OVERFLOW,
    POOL_SIZE,
    REQUEST_CONNECTIONS,
)

REQUEST_THREADS = (POOL_SIZE + POOL_OVERFLOW - BACKGROUND_CONNECTIONS) // REQUEST_CONNECTIONS
CHAIN_WAIT_THREADS = 64
_CHAIN_WAITS: WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = WeakKeyDictionary()


@asynccontextmanager
async def bounded_request_threads(_app: ASGIApp) -> AsyncIterator[None]:
    """A lifespan: the threads of the event loop that serves the app, bounded."""
    to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS
    yield


def chain_waits() -> CapacityLimiter:
    """The limiter of the threads that wait for the chain, of the running event loop."""
    loop = asyncio.get_running_loop()
    limiter = _CHAIN_WAITS.get(loop)
    if limiter is None:
        limiter = _CHAIN_WAITS[loop] = CapacityLimiter(CHAIN_WAIT_THREADS)
    return limiter
