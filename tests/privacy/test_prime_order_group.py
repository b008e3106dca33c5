"""Item 2 of issue 15: the curve/twist bit of ECDH-PSI and of the keyword-PIR OPRF.

An X25519 u-coordinate lies either on Curve25519 or on its quadratic twist -- a public
Legendre symbol -- and multiplying by a secret scalar keeps it there. When items are hashed to
arbitrary 32-byte strings (the old code), every blinded value the peer receives carries the bit
"the item hashes onto the twist": a PSI provider tells two candidate sets apart, a PIR holder
halves its list of candidate keys with every query. Hashing to the prime-order subgroup
(:mod:`privledger.protocols.hash_to_curve`) makes every blinded value a curve point.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence

import pytest

from privledger.protocols.channel import Channel, InMemoryChannel, channel_pair
from privledger.protocols.hash_to_curve import hash_to_u
from privledger.protocols.pir import keyword
from privledger.protocols.pir.keyword import KeywordTable, run_holder, run_querier
from privledger.protocols.psi import ecdh
from tests.protocols.subgroup import in_prime_order_subgroup

pytestmark = pytest.mark.privacy

P = (1 << 255) - 19
A = 486662
TIMEOUT = 60.0


def on_twist(u: bytes) -> bool:
    """Whether a u-coordinate lies on the twist (``u^3 + A u^2 + u`` is not a square)."""
    x = (int.from_bytes(u, "little") & ((1 << 255) - 1)) % P
    rhs = (x * x * x + A * x * x + x) % P
    return rhs != 0 and pow(rhs, (P - 1) // 2, P) != 1


class Recording(Channel):
    """An in-memory end that keeps every message it receives (the attacker's view)."""

    def __init__(self, inner: InMemoryChannel) -> None:
        super().__init__(inner.side)
        self._inner = inner
        self.received: list[bytes] = []

    def close(self) -> None:
        self._inner.close()

    def _send_raw(self, payload: bytes) -> None:
        self._inner._send_raw(payload)

    def _recv_raw(self, timeout: float | None) -> bytes:
        payload = self._inner._recv_raw(timeout)
        self.received.append(bytes(payload))
        return payload


def _pair() -> tuple[Channel, Recording]:
    end_a, end_b = channel_pair()
    assert isinstance(end_b, InMemoryChannel)
    return end_a, Recording(end_b)


def _in_thread(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _points(message: bytes) -> list[bytes]:
    body = message[12:]  # the records header: count (8 bytes), width (4 bytes)
    return [body[i : i + 32] for i in range(0, len(body), 32)]


def _psi_view(items: Sequence[bytes], provider_items: Sequence[bytes]) -> list[bytes]:
    """The requester's blinded items as the provider receives them."""
    requester_end, provider_end = _pair()
    thread = _in_thread(
        lambda: ecdh.run_psi(requester_end, items, role="requester", workers=1, timeout=TIMEOUT)
    )
    ecdh.run_psi(provider_end, provider_items, role="provider", workers=1, timeout=TIMEOUT)
    thread.join(TIMEOUT)
    return _points(provider_end.received[1])  # after the header


def _twist_count(items: Sequence[bytes]) -> int:
    """How many items the protocol's public hash puts on the twist (what the attacker can
    compute for any candidate set)."""
    return sum(on_twist(u) for u in ecdh.hash_items(items))


def test_ecdh_psi_blinded_items_do_not_tell_two_candidate_sets_apart() -> None:
    trials, size = 40, 150
    correct = 0
    for _ in range(trials):
        candidates = [
            [secrets.token_bytes(12) for _ in range(size)],
            [secrets.token_bytes(12) for _ in range(size)],
        ]
        secret = secrets.randbelow(2)
        seen = sum(on_twist(p) for p in _psi_view(candidates[secret], [b"other"]))
        counts = [_twist_count(c) for c in candidates]
        matching = [k for k in (0, 1) if counts[k] == seen]
        guess = matching[0] if len(matching) == 1 else secrets.randbelow(2)
        correct += guess == secret
    # chance: 20 of 40 (sd 3.2); the twist bit gives ~39 of 40
    assert correct <= 32, f"the provider told the requester's set apart {correct} of {trials}"


def test_ecdh_psi_blinded_items_are_all_curve_points() -> None:
    items = [secrets.token_bytes(16) for _ in range(1000)]
    points = _psi_view(items, [b"other"])
    assert len(points) == 1000
    assert sum(on_twist(p) for p in points) == 0  # the old hash put about 500 on the twist


def test_keyword_pir_query_does_not_narrow_the_holders_candidates() -> None:
    records = {f"acct-{i}".encode(): secrets.token_bytes(32) for i in range(1000)}
    candidates = list(records)
    table = KeywordTable.build(records, mode="bucket", k=8)
    narrowed = []
    for key in candidates[:20]:
        querier_end, holder_end = _pair()
        thread = _in_thread(
            lambda key=key, end=querier_end: run_querier(end, [key], mode="bucket", timeout=TIMEOUT)
        )
        run_holder(holder_end, table, timeout=TIMEOUT)
        thread.join(TIMEOUT)
        (blinded,) = _points(holder_end.received[1])  # after the querier's header
        bit = on_twist(blinded)
        consistent = sum(on_twist(u) == bit for u in keyword.hash_keys(candidates))
        narrowed.append(consistent)
    # the old OPRF left ~500 of the 1000 candidates per query; now every candidate stays
    assert min(narrowed) == len(candidates), f"candidates left per query: {narrowed}"


def test_hashed_points_are_in_the_prime_order_subgroup() -> None:
    hashed = hash_to_u([secrets.token_bytes(8) for _ in range(64)], b"privacy-test")
    assert all(in_prime_order_subgroup(u) and not on_twist(u) for u in hashed)
