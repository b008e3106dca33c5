"""Token buckets per client address: how many calls a node answers for callers it cannot name.

Each client address has a bucket of ``burst`` calls, refilled at ``rate`` calls a second. IPv6
addresses count per /64 (one host usually holds a whole /64), an IPv4-mapped one as the IPv4
address. The table of buckets is bounded: a bucket untouched for ``burst / rate`` seconds is full
again, so it is forgotten when a new address needs room; while every bucket in the table is in
use (an attacker rotating addresses), new addresses share one overflow bucket. Memory stays at
``max_clients`` buckets, and rotating addresses buys an attacker at most ``max_clients`` buckets'
worth of calls plus the overflow's, not one bucket per address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_CLIENTS = 10_000  # ~150 bytes each: a table of ~1.5 MB per limit at most
PROVEN_S = 600.0  # how long credentials that authenticated pass an exhausted address unchecked


def client_key(host: str) -> str:
    """The address a client's calls are counted under."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP address (a Unix socket, a test client)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass
class _Bucket:
    tokens: float
    at: float  # when ``tokens`` was counted


class ClientBuckets:
    """One token bucket per client address, in a bounded table (see the module docstring)."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("a rate above 0, a burst and a table of at least 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently used first
        self._overflow = _Bucket(burst, clock())

    def __len__(self) -> int:
        return len(self._buckets)

    def wait_s(self, client: str) -> float:
        """0 if ``client`` may make a call now, else the seconds until it may."""
        bucket = self._bucket(client)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self.rate

    def take(self, client: str) -> None:
        """Count one call of ``client``. Calls counted only after they ran (a bucket may have
        admitted several at once) go into debt, at most one burst deep: they are paid back
        before the next one is admitted."""
        bucket = self._bucket(client)
        bucket.tokens = max(bucket.tokens - 1, -float(self.burst))

    def _bucket(self, client: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is not None:
            self._buckets.move_to_end(client)
        elif len(self._buckets) < self.max_clients or self._forget_oldest(now):
            bucket = self._buckets[client] = _Bucket(self.burst, now)
        else:
            bucket = self._overflow
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        return bucket

    def _forget_oldest(self, now: float) -> bool:
        """Forget the least recently used bucket if it is full again; whether it was."""
        client, oldest = next(iter(self._buckets.items()))
        if oldest.tokens + (now - oldest.at) * self.rate < self.burst:
            return False
        del self._buckets[client]
        return True


class RecentlyProven:
    """Credentials (digests of ``Authorization`` values) that authenticated within ``ttl_s``,
    at most ``max_entries`` of them, the least recently proven forgotten first: whoever shares an
    address with someone failing to authenticate keeps working once it has proven itself."""

    def __init__(
        self,
        *,
        ttl_s: float = PROVEN_S,
        max_entries: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._until: OrderedDict[bytes, float] = OrderedDict()

    def __contains__(self, credentials: str) -> bool:
        return self._until.get(_digest(credentials), 0.0) > self._clock()

    def remember(self, credentials: str) -> None:
        key = _digest(credentials)
        self._until[key] = self._clock() + self.ttl_s
        self._until.move_to_end(key)
        if len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    def forget(self, credentials: str) -> None:
        self._until.pop(_digest(credentials), None)


def _digest(credentials: str) -> bytes:
    return hashlib.sha256(credentials.encode("latin-1")).digest()


def retry_after(wait_s: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))
