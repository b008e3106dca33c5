from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from privledger.protocols.channel import ChannelError, channel_pair
from privledger.protocols.psi import gf128, vole

TIMEOUT = 30.0


def _run(length: int) -> tuple[vole.SenderVole, vole.ReceiverVole]:
    a, b = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        sender = pool.submit(vole.vole_send, a, length, TIMEOUT)
        receiver = pool.submit(vole.vole_receive, b, length, TIMEOUT)
        result = sender.result(), receiver.result()
    assert a.transcript_hash == b.transcript_hash
    return result


def test_noise_weight_formula() -> None:
    # t = max(128, -128 / log2(1 - 2 d)), rounded up to a multiple of 8 (libOTe)
    assert vole.noise_weight(0.05) == 848
    assert vole.noise_weight(0.1) == 400
    assert vole.noise_weight(0.2) == 176
    assert vole.noise_weight(0.45) == 128
    with pytest.raises(ValueError, match="minimum distance"):
        vole.noise_weight(0.0)


@pytest.mark.parametrize("length", [1, 1000, 100_000])
def test_params(length: int) -> None:
    params = vole.VoleParams.for_length(length)
    assert params.trees >= vole.noise_weight(vole.MIN_DISTANCE[params.weight])
    assert params.code_size >= vole.SCALER * length
    assert params.code_size < 2 * vole.SCALER * length + (params.trees << params.depth)


@pytest.mark.parametrize("length", [1, 777, 20_000])
def test_correlation_holds(length: int) -> None:
    sender, receiver = _run(length)
    assert sender.b.shape == (length, 16)
    assert receiver.a.shape == (length, 8)
    assert vole.check_correlation(sender, receiver)
    # not trivially satisfied: A is dense and C != B
    assert np.count_nonzero(receiver.a.any(axis=1)) > length // 2
    assert not np.array_equal(receiver.c, sender.b)


def test_long_voles_are_split_into_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vole, "CHUNK_LENGTH", 3000)
    chunks = vole.plan(7001)
    assert [c.length for c in chunks] == [2334, 2334, 2333]
    sender, receiver = _run(7001)
    assert vole.check_correlation(sender, receiver)


def test_instances_reuse_buffers_and_fall_back_on_another_depth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five instances alternate between two sets of GGM and noise buffers; instances of
    another tree depth than the first (5 k / 848 crosses a power of two between 2713 and 2714
    outputs) expand into fresh arrays. The correlation holds either way."""
    monkeypatch.setattr(vole, "CHUNK_LENGTH", 2714)
    chunks = vole.plan(5 * 2714 - 1)
    assert [c.depth for c in chunks] == [4, 4, 4, 4, 3]
    sender, receiver = _run(5 * 2714 - 1)
    assert vole.check_correlation(sender, receiver)


def test_sender_writes_into_the_rows_of_a_wider_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """B can go straight into the first 16 bytes of 24-byte rows (RR22's decode table), over
    several instances; the other bytes are left alone."""
    monkeypatch.setattr(vole, "CHUNK_LENGTH", 400)
    table = np.zeros((1000, 24), dtype=np.uint8)
    a, b = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        sending = pool.submit(vole.vole_send, a, 1000, TIMEOUT, table[:, :16])
        receiving = pool.submit(vole.vole_receive, b, 1000, TIMEOUT)
        sender, receiver = sending.result(), receiving.result()
    assert vole.check_correlation(sender, receiver)
    assert np.shares_memory(sender.b, table) and np.array_equal(table[:, :16], sender.b)
    assert table[:, :16].any() and not table[:, 16:].any()
    with pytest.raises(ValueError, match="contiguous rows"):
        vole.vole_send(a, 1000, TIMEOUT, table[:, :32:2])


def test_check_detects_a_broken_correlation() -> None:
    sender, receiver = _run(100)
    broken = vole.ReceiverVole(receiver.a, receiver.c.copy())
    broken.c[7, 3] ^= 1
    assert not vole.check_correlation(sender, broken)


def test_correlation_entry_by_entry_reference() -> None:
    sender, receiver = _run(40)
    d = gf128.to_int(sender.delta)
    for a, b, c in zip(receiver.a, sender.b, receiver.c, strict=True):
        a_int = int.from_bytes(bytes(a), "little")
        assert gf128.to_int(c) == gf128.to_int(b) ^ gf128.mul(a_int, d)


def test_malformed_payload_is_refused() -> None:
    params = vole.VoleParams.for_length(50)
    a, b = channel_pair()

    def bad_sender() -> None:
        vole.cot_send(a, params.cot_count, TIMEOUT)
        a.send(b"short")

    with ThreadPoolExecutor(2) as pool:
        pool.submit(bad_sender)
        receiver = pool.submit(vole.vole_receive, b, 50, TIMEOUT)
        with pytest.raises(ChannelError, match="VOLE message"):
            receiver.result()


def test_instances_leave_one_by_one_through_a_holding_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A provider's node holds what it sends until it next receives (:mod:`privledger.node
    .release`): the receiver's acknowledgements must still let each VOLE instance out on its
    own -- the receiver gets instance ``j`` while the sender has sent no later one -- and the
    transcripts stay equal."""
    from privledger.node.release import LastMessages

    monkeypatch.setattr(vole, "CHUNK_LENGTH", 300)
    length = 1000
    instances = len(vole.plan(length))
    assert instances == 4
    a, b = channel_pair()
    sent = [0]  # messages the sender's channel has let out
    inner_send = a.send

    def counting_send(payload: bytes) -> None:
        sent[0] += 1  # before: the receiver may take it at once
        inner_send(payload)

    a.send = counting_send  # type: ignore[method-assign]
    holder = LastMessages({1: a})
    seen_sent: list[int] = []  # at each message the receiver takes: how many the sender let out
    inner_recv = b.recv_buffer

    def spying_recv(timeout: float | None = None) -> bytes | bytearray:
        payload = inner_recv(timeout)
        seen_sent.append(sent[0])
        return payload

    b.recv_buffer = spying_recv  # type: ignore[method-assign]
    with ThreadPoolExecutor(2) as pool:
        sending = pool.submit(vole.vole_send, holder.views[1], length, TIMEOUT)
        receiving = pool.submit(vole.vole_receive, b, length, TIMEOUT)
        sender = sending.result(timeout=TIMEOUT)
        holder.release()  # the last instance waits for the sender's next receive, or this
        receiver = receiving.result(timeout=TIMEOUT)
    assert vole.check_correlation(sender, receiver)
    first = sent[0] - instances  # the sender's messages before the instances (base OTs)
    assert seen_sent[-instances:] == [first + j + 1 for j in range(instances)]
    assert holder.views[1].transcript_hash == b.transcript_hash
