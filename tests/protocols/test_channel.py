from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest

from privledger.protocols.channel import (
    Channel,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    channel_pair,
    recv_records,
    send_records,
)


def _chain(messages: list[tuple[bytes, bytes]]) -> bytes:
    head = bytes(32)
    for sender, payload in messages:
        head = hashlib.sha256(head + sender + len(payload).to_bytes(8, "big") + payload).digest()
    return head


def test_pair_sides_and_initial_transcript() -> None:
    a, b = channel_pair()
    assert (a.side, b.side) == ("a", "b")
    assert a.transcript_hash == b.transcript_hash == bytes(32)


def test_messages_arrive_in_order_and_transcripts_match() -> None:
    a, b = channel_pair()
    a.send(b"hello")
    a.send(b"")
    assert b.recv(1) == b"hello"
    assert b.recv(1) == b""
    b.send(b"x" * 1000)
    assert a.recv(1) == b"x" * 1000
    expected = _chain([(b"a", b"hello"), (b"a", b""), (b"b", b"x" * 1000)])
    assert a.transcript_hash == b.transcript_hash == expected


def test_transcript_binds_direction() -> None:
    a, b = channel_pair()
    a.send(b"m")
    b.recv(1)
    c, d = channel_pair()
    d.send(b"m")
    c.recv(1)
    assert a.transcript_hash != c.transcript_hash
    assert c.transcript_hash == d.transcript_hash


def test_recv_timeout() -> None:
    a, _ = channel_pair()
    started = time.monotonic()
    with pytest.raises(ChannelTimeout):
        a.recv(timeout=0.05)
    assert time.monotonic() - started < 2
    assert a.transcript_hash == bytes(32)


def test_close_delivers_pending_messages_then_raises() -> None:
    a, b = channel_pair()
    a.send(b"last words")
    a.close()
    assert b.recv(1) == b"last words"
    for end in (a, b):
        with pytest.raises(ChannelClosed):
            end.recv(1)
        with pytest.raises(ChannelClosed):
            end.send(b"too late")
    a.close()  # idempotent


def test_close_wakes_blocked_receiver() -> None:
    a, b = channel_pair()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            b.recv(timeout=10)
        except ChannelError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    a.close()
    waiter.join(5)
    assert not waiter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ChannelClosed)


def test_context_manager_closes() -> None:
    a, b = channel_pair()
    with a:
        pass
    with pytest.raises(ChannelClosed):
        b.recv(1)


def test_side_must_be_a_or_b() -> None:
    class Dummy(Channel):
        def close(self) -> None: ...
        def _send_raw(self, payload: bytes) -> None: ...
        def _recv_raw(self, timeout: float | None) -> bytes:
            return b""

    with pytest.raises(ValueError, match="side"):
        Dummy("c")  # type: ignore[arg-type]


@pytest.mark.parametrize(("count", "width"), [(0, 32), (1, 1), (1000, 32), (7, 10_000)])
def test_records_round_trip(count: int, width: int) -> None:
    a, b = channel_pair()
    records = np.random.default_rng(count).integers(0, 256, (count, width), dtype=np.uint8)
    send_records(a, records)
    got = recv_records(b, width, 1, count=count)
    assert got.dtype == np.uint8 and got.shape == (count, width)
    assert np.array_equal(got, records)
    assert a.transcript_hash == b.transcript_hash


def test_records_accept_non_contiguous_input() -> None:
    a, b = channel_pair()
    records = np.arange(64, dtype=np.uint8).reshape(8, 8)[:, ::2]
    send_records(a, records)
    assert np.array_equal(recv_records(b, 4, 1), records)


@pytest.mark.parametrize(
    "records",
    [np.zeros(8, dtype=np.uint8), np.zeros((2, 4), dtype=np.int32), np.zeros((1, 2, 3), np.uint8)],
)
def test_send_records_needs_2d_uint8(records: np.ndarray) -> None:
    a, _ = channel_pair()
    with pytest.raises(ValueError, match="2-D uint8"):
        send_records(a, records)


def _records_payload(count: int, width: int, body: bytes) -> bytes:
    return count.to_bytes(8, "big") + width.to_bytes(4, "big") + body


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"short", "too short"),
        (_records_payload(3, 32, bytes(95)), "header says 3 x 32"),
        (_records_payload(3, 32, bytes(97)), "header says 3 x 32"),
        (_records_payload(3, 16, bytes(48)), "expected records of 32 bytes"),
    ],
)
def test_malformed_records_rejected(payload: bytes, match: str) -> None:
    a, b = channel_pair()
    a.send(payload)
    with pytest.raises(ChannelError, match=match):
        recv_records(b, 32, 1)


def test_unexpected_record_count_rejected() -> None:
    a, b = channel_pair()
    send_records(a, np.zeros((3, 32), dtype=np.uint8))
    with pytest.raises(ChannelError, match="expected 4 records, got 3"):
        recv_records(b, 32, 1, count=4)
