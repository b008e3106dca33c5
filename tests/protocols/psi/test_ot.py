from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from privledger.protocols.channel import channel_pair, send_records
from privledger.protocols.psi import jit, ot

TIMEOUT = 30.0


def _reference_transpose(matrix: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(matrix, axis=1, bitorder="little")
    return np.packbits(bits.T, axis=1, bitorder="little")


@pytest.mark.parametrize("shape", [(8, 1), (16, 3), (512, 40), (8 * 40000, 3), (16, 200000)])
def test_transpose_matches_unpackbits_reference(shape: tuple[int, int]) -> None:
    matrix = ot.random_bytes(*shape)
    got = ot.transpose_bits(matrix)
    assert np.array_equal(got, _reference_transpose(matrix))
    if shape[1] * 8 % 8 == 0:
        assert np.array_equal(ot.transpose_bits(got), matrix)


def test_transpose_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError):
        ot.transpose_bits(np.zeros((7, 2), dtype=np.uint8))


def test_aes_ecb_matches_cryptography_and_handles_odd_sizes() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = secrets.token_bytes(16)
    data = ot.random_bytes(37, 16)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    assert ot.aes_ecb(key, data).tobytes() == enc.update(data.tobytes())
    with pytest.raises(ValueError):
        ot.aes_ecb(key, np.zeros(15, dtype=np.uint8))


@pytest.mark.parametrize("blocks", [1, 2, 3, 4, 5, 8, 9])
@pytest.mark.parametrize("in_place", [False, True])
def test_aes_ecb_across_chunks_in_place_or_not(
    blocks: int, in_place: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 4 blocks here: the last block of the output goes through the small spare, an
    in-place call through the per-thread one (cryptography >= 51 refuses overlapping buffers)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    monkeypatch.setattr(ot, "_AES_CHUNK_BLOCKS", 4)
    key = secrets.token_bytes(16)
    data = ot.random_bytes(blocks, 16)
    expected = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(data.tobytes())
    target = data if in_place else np.empty_like(data)
    assert ot.aes_ecb(key, data, target) is target
    assert target.tobytes() == expected


def test_prg_columns_are_chunkable() -> None:
    seeds = ot.random_bytes(4, 16)
    whole = ot.prg_columns(seeds, 64)
    assert np.array_equal(
        np.hstack([ot.prg_columns(seeds, 32), ot.prg_columns(seeds, 32, 32)]), whole
    )


def test_column_prg_continues_and_jumps() -> None:
    seeds = ot.random_bytes(3, 16)
    whole = ot.prg_columns(seeds, 160)
    first = ot.Cipher(ot.algorithms.AES(seeds[1].tobytes()), ot.modes.CTR(bytes(16))).encryptor()
    assert whole[1].tobytes() == first.update(bytes(160))  # G is AES-CTR from counter 0
    prg = ot.ColumnPrg(seeds)
    parts = [prg.read(5), prg.read(27, 5), prg.read(48, 32)]  # continues, even mid-block
    assert np.array_equal(np.hstack(parts), whole[:, :80])
    assert np.array_equal(prg.read(32, 128), whole[:, 128:])  # a jump starts new states
    assert np.array_equal(prg.read(16, 16), whole[:, 16:32])  # and so does going back
    with pytest.raises(ValueError, match="multiple of 16"):
        prg.read(16, 8)


def test_mmo_hash_depends_on_tweak_and_every_block() -> None:
    rows = ot.random_bytes(4, 64)
    base = ot.mmo_hash(rows, np.zeros(4, dtype=np.uint64), 1)
    assert not np.array_equal(base, ot.mmo_hash(rows, np.ones(4, dtype=np.uint64), 1))
    for b in range(4):
        changed = rows.copy()
        changed[:, 16 * b] ^= 1
        assert not np.any(np.all(ot.mmo_hash(changed, np.zeros(4, dtype=np.uint64), 1) == base, 1))


def test_base_ot_receiver_gets_the_chosen_key_only() -> None:
    a, b = channel_pair()
    choices = ot.random_bits(64)
    with ThreadPoolExecutor(2) as pool:
        sent = pool.submit(ot.base_ot_send, a, 64, TIMEOUT)
        got = pool.submit(ot.base_ot_receive, b, choices, TIMEOUT).result()
        k0, k1 = sent.result()
    expected = np.where(choices[:, None], k1, k0)
    assert np.array_equal(got, expected)
    assert not np.any(np.all(k0 == k1, axis=1))
    assert not np.any(np.all(got == np.where(choices[:, None], k0, k1), axis=1))


NOT_ON_CURVE = bytes([2]) + (5).to_bytes(32, "big")  # x = 5: x^3 + 7 is not a square mod p


@pytest.mark.parametrize(
    "point",
    [bytes(32), bytes(33), NOT_ON_CURVE, bytes([4]) + NOT_ON_CURVE[1:], b"\x02" + b"\xff" * 32],
    ids=["short", "zero", "not-on-curve", "bad-prefix", "x-beyond-p"],
)
def test_base_ot_refuses_points_outside_the_group(point: bytes) -> None:
    a, b = channel_pair()
    b.send(point)
    with pytest.raises(ot.OtError):
        ot.base_ot_receive(a, ot.random_bits(4), TIMEOUT)
    if len(point) != ot.POINT_BYTES:
        return
    a2, b2 = channel_pair()
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(ot.base_ot_send, a2, 2, TIMEOUT)
        b2.recv(TIMEOUT)
        send_records(b2, np.frombuffer(point * 2, dtype=np.uint8).reshape(2, ot.POINT_BYTES))
        with pytest.raises(ot.OtError):
            fut.result()


def test_base_ot_sender_refuses_its_own_point_back() -> None:
    """``B_i = A`` would make ``k1_i`` the hash of the identity: refused."""
    a, b = channel_pair()
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(ot.base_ot_send, a, 1, TIMEOUT)
        a_point = b.recv(TIMEOUT)
        send_records(b, np.frombuffer(a_point, dtype=np.uint8).reshape(1, ot.POINT_BYTES))
        with pytest.raises(ot.OtError, match="degenerate"):
            fut.result()


@pytest.mark.parametrize("count", [1, 13, 512])
def test_iknp_random_ot(count: int) -> None:
    a, b = channel_pair()
    choices = ot.random_bits(count)
    with ThreadPoolExecutor(2) as pool:
        sent = pool.submit(ot.iknp_send, a, count, TIMEOUT)
        got = pool.submit(ot.iknp_receive, b, choices, TIMEOUT).result()
        k0, k1 = sent.result()
    assert np.array_equal(got, np.where(choices[:, None], k1, k0))
    assert not np.any(np.all(k0 == k1, axis=1))
    assert a.transcript_hash == b.transcript_hash


def test_kkrt_oprf_matches_exactly_on_equal_inputs() -> None:
    bins = 256
    choices = ot.random_bits(ot.CODE_BITS)
    seeds0, seeds1 = ot.random_bytes(ot.CODE_BITS, 16), ot.random_bytes(ot.CODE_BITS, 16)
    chosen = np.where(choices[:, None], seeds1, seeds0)
    key = secrets.token_bytes(16)
    receiver = ot.KkrtReceiver(seeds0, seeds1, key)
    sender = ot.KkrtSender(choices, chosen, key, bins)
    inputs = ot.random_bytes(bins, 16)
    outputs = []
    for lo in (0, 128):
        u, t0_rows = receiver.encode(inputs[lo : lo + 128], offset=lo)
        sender.receive(u, offset=lo)
        outputs.append(ot.KkrtReceiver.outputs(t0_rows, offset=lo))
    mine = np.vstack(outputs)
    all_bins = np.arange(bins, dtype=np.uint64)
    assert np.array_equal(sender.evaluate(all_bins, inputs), mine)
    other = inputs.copy()
    other[:, 5] ^= 1
    assert not np.any(np.all(sender.evaluate(all_bins, other) == mine, axis=1))
    shifted = np.roll(all_bins, 1)  # same input, other bin: unrelated output
    assert not np.any(np.all(sender.evaluate(shifted, inputs) == mine, axis=1))


@pytest.mark.parametrize("shape", [(64, 8), (128, 64), (512, 16), (512, 16384), (192, 24000)])
def test_wide_transpose_path_matches_reference(shape: tuple[int, int]) -> None:
    matrix = ot.random_bytes(*shape)
    assert np.array_equal(ot.transpose_bits(matrix), _reference_transpose(matrix))


@pytest.mark.parametrize("loaded", [False, True])
@pytest.mark.parametrize("shape", [(64, 8), (128, 71136), (512, 4096), (192, 24), (64, 1024)])
def test_compiled_and_numpy_transposes_agree(
    monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int], loaded: bool
) -> None:
    """The compiled 64x64-block transpose (once numba is loaded) and the numpy tiles."""
    import numba  # noqa: F401 - loaded, as after any RR22 kernel

    matrix = ot.random_bytes(*shape)
    monkeypatch.setattr(jit, "loaded", lambda: loaded)
    expected = _reference_transpose(matrix) if shape[1] <= 4096 else None
    got = ot.transpose_bits(matrix)
    monkeypatch.setattr(jit, "loaded", lambda: not loaded)
    assert np.array_equal(got, ot.transpose_bits(matrix))
    assert expected is None or np.array_equal(got, expected)


def test_take_and_put_rows_match_fancy_indexing() -> None:
    matrix = ot.random_bytes(1000, 11)
    index = np.array([5, 0, 999, 5, 17])
    assert np.array_equal(ot.take_rows(matrix, index), matrix[index])
    assert ot.take_rows(matrix, index[:0]).shape == (0, 11)
    target = np.zeros((1000, 11), dtype=np.uint8)
    expected = target.copy()
    values = ot.random_bytes(3, 11)
    ot.put_rows(target, np.array([3, 1, 2]), values)
    expected[[3, 1, 2]] = values
    assert np.array_equal(target, expected)
    strided = matrix[:, :5]  # not contiguous: falls back to numpy indexing
    assert np.array_equal(ot.take_rows(strided, index), strided[index])


def test_kkrt_sender_rows_equal_receive_then_evaluate() -> None:
    bins = 256
    choices = ot.random_bits(ot.CODE_BITS)
    seeds0, seeds1 = ot.random_bytes(ot.CODE_BITS, 16), ot.random_bytes(ot.CODE_BITS, 16)
    chosen = np.where(choices[:, None], seeds1, seeds0)
    key = secrets.token_bytes(16)
    receiver = ot.KkrtReceiver(seeds0, seeds1, key)
    stored, streamed = (
        ot.KkrtSender(choices, chosen, key, bins),
        ot.KkrtSender(choices, chosen, key, bins),
    )
    inputs = ot.random_bytes(128, 16)
    u, t0_rows = receiver.encode(inputs, offset=128)
    stored.receive(u, offset=128)
    at = np.arange(128, 256, dtype=np.uint64)
    mine = ot.KkrtReceiver.outputs(t0_rows, offset=128)
    assert np.array_equal(stored.evaluate(at, inputs), mine)
    assert np.array_equal(streamed.evaluate_rows(streamed.rows(u, 128), at, inputs), mine)
    with pytest.raises(ot.OtError):
        streamed.rows(u, 256)  # beyond the table
