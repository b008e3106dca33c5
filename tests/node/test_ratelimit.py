"""Token buckets per client address: refill, debt, and a table that an attacker rotating
addresses cannot grow past its bound."""

from __future__ import annotations

import pytest

from privledger.api.ratelimit import ClientBuckets, RecentlyProven, client_key, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _admitted(buckets: ClientBuckets, client: str, calls: int) -> int:
    admitted = 0
    for _ in range(calls):
        if buckets.wait_s(client) == 0:
            buckets.take(client)
            admitted += 1
    return admitted


def test_a_bucket_holds_a_burst_and_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = ClientBuckets(rate=2.0, burst=4, clock=clock)
    assert _admitted(buckets, "a", 10) == 4
    assert buckets.wait_s("a") == pytest.approx(0.5)
    assert retry_after(buckets.wait_s("a")) == "1"
    clock.now += 1.0
    assert _admitted(buckets, "a", 10) == 2
    clock.now += 60
    assert _admitted(buckets, "a", 10) == 4  # never more than a burst
    for _ in range(10):  # calls counted after they ran go into debt, at most a burst deep
        buckets.take("a")
    assert buckets.wait_s("a") == pytest.approx(2.5)


def test_rotating_addresses_neither_grow_the_table_nor_get_a_bucket_each() -> None:
    clock = Clock()
    buckets = ClientBuckets(rate=1.0, burst=3, max_clients=100, clock=clock)
    admitted = sum(_admitted(buckets, f"198.51.{i // 256}.{i % 256}", 3) for i in range(5_000))
    assert len(buckets) == 100
    assert admitted == 100 * 3 + 3  # the table's buckets and the one they overflow into
    clock.now += 3  # every bucket full again: forgotten as new addresses need room
    assert _admitted(buckets, "192.0.2.1", 3) == 3
    assert len(buckets) == 100


def test_addresses_are_counted_per_host_and_ipv6_per_64() -> None:
    assert client_key("203.0.113.5") == "203.0.113.5"
    assert client_key("::ffff:203.0.113.5") == "203.0.113.5"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("") == ""  # no address (a Unix socket): one bucket for all such callers


def test_proven_credentials_are_remembered_for_a_while_and_bounded() -> None:
    clock = Clock()
    proven = RecentlyProven(ttl_s=10, max_entries=3, clock=clock)
    proven.remember("Bearer a")
    assert "Bearer a" in proven and "Bearer b" not in proven
    clock.now += 11
    assert "Bearer a" not in proven
    for name in "abcd":
        proven.remember(f"Bearer {name}")
    assert "Bearer a" not in proven and "Bearer d" in proven  # the oldest made room
    proven.forget("Bearer d")
    assert "Bearer d" not in proven
