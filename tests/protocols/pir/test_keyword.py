from __future__ import annotations

import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privledger.protocols.channel import Channel, InMemoryChannel, channel_pair
from privledger.protocols.hash_to_curve import hash_to_u
from privledger.protocols.pir import keyword
from privledger.protocols.pir.keyword import (
    HolderView,
    KeywordResult,
    KeywordTable,
    PirError,
    PirHandshakeError,
    QuerierSetup,
    run_holder,
    run_querier,
)
from tests.protocols.subgroup import in_prime_order_subgroup

TIMEOUT = 30.0


class Recording(Channel):
    """Wraps an in-memory end and keeps every message it receives."""

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
        self.received.append(payload)
        return payload


def _items(n: int, width: int = 32, seed: int = 0) -> dict[bytes, bytes]:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 256, (n, width), dtype=np.uint8)
    return {f"acct-{i}".encode(): values[i].tobytes() for i in range(n)}


def _session(
    table: KeywordTable,
    keys: Sequence[bytes],
    *,
    mode: keyword.Mode = "pir",
    setup: QuerierSetup | None = None,
    querier_is_side_a: bool = True,
) -> tuple[KeywordResult, HolderView, Recording]:
    a, b = channel_pair()
    assert isinstance(a, InMemoryChannel) and isinstance(b, InMemoryChannel)
    querier, holder = (a, b) if querier_is_side_a else (b, a)
    recorder = Recording(holder)
    with ThreadPoolExecutor(1) as pool:
        view = pool.submit(run_holder, recorder, table, timeout=TIMEOUT)
        result = run_querier(querier, keys, mode=mode, setup=setup, timeout=TIMEOUT)
        seen = view.result(timeout=TIMEOUT)
    assert querier.transcript_hash == recorder.transcript_hash
    return result, seen, recorder


@pytest.fixture(scope="module")
def small() -> tuple[dict[bytes, bytes], KeywordTable]:
    items = _items(1 << 12)
    return items, KeywordTable.build(items, workers=1)


def test_oprf_unblinding_matches_direct_evaluation() -> None:
    private = secrets.token_bytes(32)
    scalar = X25519PrivateKey.from_private_bytes(private)
    keys = [secrets.token_bytes(12) for _ in range(64)]
    direct = keyword.oprf_evaluate(private, keys)
    for key, expect in zip(keys, direct, strict=True):
        blinded = keyword._blind(key)
        evaluated = scalar.exchange(keyword.X25519PublicKey.from_public_bytes(blinded.blinded))
        assert keyword._unblind(blinded, evaluated) == expect
    hashed = keyword.hash_keys(keys)
    assert all(in_prime_order_subgroup(u) for u in hashed)
    assert hashed == hash_to_u(
        keys, b"privledger/keyword-pir/v3-with-curve25519_XMD:SHA-512_ELL2_RO_"
    )


def test_present_absent_and_batch(small: tuple[dict[bytes, bytes], KeywordTable]) -> None:
    items, table = small
    keys = [b"acct-0", b"missing", b"acct-4095", b"acct-17", b"", b"acct-17"]
    result, view, _ = _session(table, keys)
    assert result.values == [
        items[b"acct-0"],
        None,
        items[b"acct-4095"],
        items[b"acct-17"],
        None,
        items[b"acct-17"],
    ]
    assert view.mode == "pir" and view.batch == len(keys) and view.sent_hint
    assert view.buckets is None
    assert result.offline_bytes == table.offline_bytes + 12  # + records header of the hint
    # the cached setup skips the hint; the querier may be side b
    again, view2, _ = _session(table, [b"acct-99"], setup=result.setup, querier_is_side_a=False)
    assert again.values == [items[b"acct-99"]] and not view2.sent_hint
    empty, _, _ = _session(table, [], setup=result.setup)
    assert empty.values == []


def test_every_record_retrievable_small() -> None:
    items = _items(300, width=5, seed=3)
    table = KeywordTable.build(items, workers=1)
    keys = [*items, b"absent-1", b"absent-2"]
    result, _, _ = _session(table, keys)
    assert result.values == [*items.values(), None, None]


def test_medium_table_batch() -> None:
    items = _items(1 << 15, seed=4)
    table = KeywordTable.build(items)
    assert table.capacity * (keyword.TAG_BYTES + 32) <= table.buckets
    keys = [f"acct-{i}".encode() for i in range(0, 1 << 15, 2048)] + [b"acct-x", b"acct--1"]
    result, view, _ = _session(table, keys)
    assert result.values == [items.get(k) for k in keys]
    assert view.batch == len(keys)


def test_holder_view_independent_of_key(small: tuple[dict[bytes, bytes], KeywordTable]) -> None:
    _, table = small
    setup = _session(table, [b"acct-1"])[0].setup
    sessions = 12
    views: dict[bytes, list[list[bytes]]] = {b"acct-1": [], b"not-there": []}
    for key, received in views.items():
        for _ in range(sessions):
            _, view, recorder = _session(table, [key], setup=setup)
            assert view.buckets is None
            received.append(recorder.received)
    # identical message count and lengths whatever the key (present or absent)
    shapes = {tuple(len(m) for m in msgs) for lists in views.values() for msgs in lists}
    assert len(shapes) == 1
    # identical headers; blinded points and PIR queries look alike for the two keys
    headers = {msgs[0] for lists in views.values() for msgs in lists}
    assert len(headers) == 1

    def body(key: bytes, index: int) -> np.ndarray:
        return np.concatenate([np.frombuffer(msgs[index][12:], np.uint8) for msgs in views[key]])

    for index in (1, 2):  # 1: blinded points, 2: PIR queries (uint32 each)
        x, y = body(b"acct-1", index), body(b"not-there", index)
        hx, hy = np.bincount(x, minlength=256), np.bincount(y, minlength=256)
        # same mean and variance within 7 standard errors (uniform bytes: sd 74, var 5461)
        assert abs(x.mean() - y.mean()) < 7 * 74 * np.sqrt(2 / x.size)
        assert abs(x.var() - y.var()) < 7 * 5461 * np.sqrt(2 * 0.8 / x.size)
        if index == 2:
            expected = x.size / 256
            assert ((hx - expected) ** 2 / expected).sum() < 400
            assert ((hy - expected) ** 2 / expected).sum() < 400
            grid = np.arange(256)
            cx, cy = np.cumsum(hx) / x.size, np.cumsum(hy) / y.size
            # two-sample KS on byte values, critical value at alpha ~ 1e-3
            assert np.abs(cx[grid] - cy[grid]).max() < 1.95 * np.sqrt(2 / x.size)
    q1 = np.concatenate([np.frombuffer(m[2][12:], "<u4") for m in views[b"acct-1"]])
    q2 = np.concatenate([np.frombuffer(m[2][12:], "<u4") for m in views[b"not-there"]])
    for q in (q1, q2):
        u = q.astype(np.float64) / 2**32
        assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005


def test_bucket_mode_k_anonymous() -> None:
    items = _items(1 << 12, seed=5)
    table = KeywordTable.build(items, mode="bucket", k=32, workers=1)
    assert table.buckets == keyword.bucket_layout(1 << 12, 32)[0] < 128  # ~2k keys per bucket
    keys = [b"acct-5", b"acct-4000", b"nobody"]
    result, view, recorder = _session(table, keys, mode="bucket")
    assert result.values == [items[b"acct-5"], items[b"acct-4000"], None]
    assert view.mode == "bucket" and not view.sent_hint
    seed = result.setup.setup.seed
    expect = tuple(keyword.bucket_of(k, seed, table.buckets) for k in keys)
    assert view.buckets == expect
    for key, bucket in zip(keys[:2], expect[:2], strict=True):
        held = table.bucket_keys(bucket)
        assert key in held and 32 <= len(held) <= table.capacity
    # the holder received exactly: header, K blinded points, K bucket ids -- nothing else
    assert len(recorder.received) == 3
    ids = np.frombuffer(recorder.received[2][12:], "<u8")
    assert tuple(ids.tolist()) == expect


def test_wrong_inputs_refused(small: tuple[dict[bytes, bytes], KeywordTable]) -> None:
    _, table = small
    with pytest.raises(PirError, match="same length"):
        KeywordTable.build({b"a": b"12", b"b": b"123"}, workers=1)
    with pytest.raises(PirError, match="duplicate"):
        KeywordTable.build([(b"a", b"1"), (b"a", b"2")], workers=1)
    with pytest.raises(TypeError, match="bytes"):
        KeywordTable.build({"a": b"1"}, workers=1)
    with pytest.raises(PirError, match="mode"):
        KeywordTable.build({b"a": b"1"}, mode="fast", workers=1)
    with pytest.raises(PirError, match="k must"):
        KeywordTable.build({b"a": b"1"}, mode="bucket", k=0, workers=1)
    with pytest.raises(PirError, match="value length"):
        KeywordTable.build({b"a": b""}, workers=1)
    a, _ = channel_pair()
    with pytest.raises(TypeError, match="bytes"):
        run_querier(a, ["text"], timeout=1)
    # mode mismatch: the querier asks for bucket mode, the table is PIR
    querier, holder = channel_pair()
    with ThreadPoolExecutor(1) as pool:
        served = pool.submit(run_holder, holder, table, timeout=TIMEOUT)
        with pytest.raises(PirHandshakeError, match="mode mismatch"):
            run_querier(querier, [b"x"], mode="bucket", timeout=TIMEOUT)
        with pytest.raises(PirHandshakeError, match="mode mismatch"):
            served.result(timeout=TIMEOUT)
    # two holders
    a, b = channel_pair()
    with ThreadPoolExecutor(1) as pool:
        served = pool.submit(run_holder, b, table, timeout=TIMEOUT)
        with pytest.raises(PirHandshakeError, match="both parties"):
            run_holder(a, table, timeout=TIMEOUT)
        with pytest.raises(PirHandshakeError):
            served.result(timeout=TIMEOUT)
    a, b = channel_pair()
    b.send(b"not json")
    with pytest.raises(PirHandshakeError, match="JSON"):
        run_querier(a, [b"x"], timeout=TIMEOUT)


@pytest.mark.slow
def test_present_and_absent_keys_at_a_million_records_of_32_bytes() -> None:
    """The acceptance size: 10^6 records x 32 B in PIR mode (~50-60 s in CI on two cores, almost
    all of it the holder's one-time OPRF over every key). Present keys at both ends and in between,
    absent keys that look alike, one batch."""
    n = 10**6
    items = _items(n, seed=11)
    table = KeywordTable.build(items)
    assert table.records == n and table.value_bytes == 32
    assert table.capacity * (keyword.TAG_BYTES + 32) <= table.buckets  # a square-ish matrix
    rng = np.random.default_rng(12)
    present = [b"acct-0", b"acct-999999", *(f"acct-{i}".encode() for i in rng.integers(0, n, 6))]
    absent = [b"acct-1000000", b"acct--1", b"acct-00", b"ACCT-5", b""]
    keys = [*present, *absent]
    result, view, _ = _session(table, keys)
    assert result.values == [*(items[key] for key in present), *([None] * len(absent))]
    assert view.batch == len(keys) and view.sent_hint
