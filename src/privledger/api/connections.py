"""What the node's HTTP server allows a connection before its request's headers are in.

uvicorn arms no timer while a request's headers arrive: its keep-alive timeout only runs between
requests and every byte cancels it (Kludex/uvicorn#157), and a connection that sends nothing at
all has none. A client that opens connections and never finishes their headers holds one of the
node's file descriptors each for as long as it likes; a few thousand from one outsider exhaust
the process's limit, the node then accepts no connection, its peers' frames time out and their
tasks fail (red team F-11; MISSION F23). Nodes are reached directly at their endpoint on chain,
with no proxy in front to enforce a header timeout, so the server does it itself:

- a connection that has not completed a request's headers :data:`HEADER_TIMEOUT_S` after it
  opened, or after the previous response on a keep-alive connection, is closed;
- a connection from an address (an IPv6 host per /64) that already has
  :data:`MAX_WAITING_PER_ADDRESS` connections waiting for their headers is closed at once, so
  one address cannot hold the descriptors. Trusted proxies are not capped: every client behind
  one arrives from its address, and which client it is only shows in the headers.

A request's body has no deadline while the request is being answered: the peers' frame streams
are chunked POST bodies that last as long as a protocol run. What is left of a body once its
response has gone counts against the next request's deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

from pydantic import IPvAnyNetwork
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from privledger.api.ratelimit import client_key

HEADER_TIMEOUT_S = 10.0
MAX_WAITING_PER_ADDRESS = 64

logger = logging.getLogger(__name__)


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for a request's headers and a cap per
    address on connections waiting for them (see the module docstring). Built per server by
    :func:`header_deadline`, which gives each server its own tally."""

    timeout_s: ClassVar[float] = HEADER_TIMEOUT_S
    per_address: ClassVar[int] = MAX_WAITING_PER_ADDRESS
    uncapped: ClassVar[tuple[IPvAnyNetwork, ...]] = ()
    waiting: ClassVar[Counter[str]]  # connections waiting for headers, by client address

    _deadline: asyncio.TimerHandle | None = None
    _address: str | None = None  # the tally this connection counts in, if capped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.client is not None and not self._uncapped(self.client[0]):
            self._address = client_key(self.client[0])
            if self.waiting[self._address] >= self.per_address:
                logger.debug("%s holds too many unfinished requests: closed", self._address)
                transport.close()
                return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn armed its keep-alive timer: nothing of a next request is queued, its headers
        # are due from now (and the rest of a body answered before it was read, as nginx's
        # lingering_time bounds it, goes in the same time)
        if self.timeout_keep_alive_task is not None:
            self._await_headers()

    def _uncapped(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.uncapped)

    def _await_headers(self) -> None:
        if self._deadline is not None:
            return
        self._deadline = self.loop.call_later(self.timeout_s, self._headers_overdue)
        if self._address is not None:
            self.waiting[self._address] += 1

    def _stop_waiting(self) -> None:
        if self._deadline is None:
            return
        self._deadline.cancel()
        self._deadline = None
        if self._address is not None:
            self.waiting[self._address] -= 1
            if not self.waiting[self._address]:
                del self.waiting[self._address]

    def _headers_overdue(self) -> None:
        self._stop_waiting()
        logger.debug("no request headers from %s in %.0f s: closed", self.client, self.timeout_s)
        self.transport.close()


def header_deadline(
    trusted_proxies: Sequence[IPvAnyNetwork],
    *,
    timeout_s: float = HEADER_TIMEOUT_S,
    per_address: int = MAX_WAITING_PER_ADDRESS,
) -> type[HeaderDeadline]:
    """The HTTP protocol class for one server (``uvicorn.Config(http=...)``), with a tally of
    its own; connections from ``trusted_proxies`` are not capped."""

    class ForServer(HeaderDeadline):
        waiting: ClassVar[Counter[str]] = Counter()

    ForServer.timeout_s = timeout_s
    ForServer.per_address = per_address
    ForServer.uncapped = tuple(trusted_proxies)
    return ForServer


def raise_open_files_limit() -> int:
    """Let the process hold as many file descriptors as its hard limit allows (the soft limit
    is often 1,024 where the hard one is far higher): each connection holds one. The limit
    now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:  # infinity is no valid soft limit
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
