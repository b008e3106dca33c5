from __future__ import annotations

import secrets

import numpy as np
import pytest

from privledger.protocols.psi import exacc


def _reference(code: exacc.ExAccCode, noisy: np.ndarray) -> np.ndarray:
    """B A e with A and B written out: prefix XOR, then per output the XOR of ``w`` entries."""
    prefix = np.zeros_like(noisy)
    running = np.zeros(noisy.shape[1], dtype=np.uint8)
    for i, row in enumerate(noisy):
        running = running ^ row
        prefix[i] = running
    where = code.positions(0, code.message_size)
    out = np.zeros((code.message_size, noisy.shape[1]), dtype=np.uint8)
    for i in range(code.message_size):
        for j in where[i]:
            out[i] ^= prefix[j]
    return out


@pytest.mark.parametrize(("k", "n", "width"), [(1, 1, 8), (50, 100, 16), (300, 600, 24)])
def test_dual_encode_matches_reference(k: int, n: int, width: int) -> None:
    code = exacc.ExAccCode(k, n, 7, secrets.token_bytes(16))
    noisy = np.frombuffer(secrets.token_bytes(n * width), dtype=np.uint8).reshape(n, width)
    expect = _reference(code, noisy)
    assert np.array_equal(code.dual_encode(noisy.copy()), expect)


def test_dual_encode_into_with_a_sparse_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense vector and a sparse one encoded in one pass (over several expander batches),
    each equal to its own reference, written into the given outputs; the sparse vector's points
    need not be sorted."""
    monkeypatch.setattr(exacc, "CHUNK_ROWS", 64)
    code = exacc.ExAccCode(300, 1500, 7, secrets.token_bytes(16))
    wide = np.frombuffer(secrets.token_bytes(1500 * 16), dtype=np.uint8).reshape(1500, 16)
    points = np.array([700, 3, 1499, 0, 701], dtype=np.int64)
    values = np.frombuffer(secrets.token_bytes(40), dtype=np.uint8).reshape(5, 8)
    sparse = np.zeros((1500, 8), dtype=np.uint8)
    sparse[points] = values
    expect = _reference(code, wide), _reference(code, sparse)
    outs = np.empty((300, 16), dtype=np.uint8), np.empty((300, 8), dtype=np.uint8)
    vector = exacc.SparseVector.of(1500, points, values)
    code.dual_encode_into(wide.copy(), outs[0], (vector, outs[1]))
    assert np.array_equal(outs[0], expect[0]) and np.array_equal(outs[1], expect[1])
    rows = np.zeros((300, 24), dtype=np.uint8)  # an output of strided rows: its first 16 bytes
    code.dual_encode_into(wide.copy(), rows[:, :16])
    assert np.array_equal(rows[:, :16], expect[0]) and not rows[:, 16:].any()
    with pytest.raises(ValueError, match="output"):
        code.dual_encode_into(wide.copy(), np.empty((300, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="sparse vector"):
        code.dual_encode_into(wide.copy(), outs[0], (vector, outs[1][:, :4]))


@pytest.mark.parametrize("count", [0, 1, 40, 999])
def test_sparse_vector_prefix_matches_dense(count: int) -> None:
    """Every bucket size: the sparse vector's encoding equals the dense vector's."""
    code = exacc.ExAccCode(200, 1000, 7, secrets.token_bytes(16))
    points = np.array(sorted(secrets.SystemRandom().sample(range(1000), count)), dtype=np.int64)
    values = np.frombuffer(secrets.token_bytes(8 * count), dtype=np.uint8).reshape(count, 8)
    dense = np.zeros((1000, 8), dtype=np.uint8)
    dense[points] = values
    out = np.empty((200, 8), dtype=np.uint8)
    code.dual_encode_into(
        np.zeros((1000, 8), dtype=np.uint8),
        np.empty((200, 8), np.uint8),
        (exacc.SparseVector.of(1000, points, values), out),
    )
    assert np.array_equal(out, code.dual_encode(dense))


def test_positions_are_chunk_independent_and_in_range() -> None:
    code = exacc.ExAccCode(1000, 2000, 11, secrets.token_bytes(16))
    whole = code.positions(0, 1000)
    assert whole.shape == (1000, 11)
    assert whole.min() >= 0 and whole.max() < 2000
    assert np.array_equal(
        np.concatenate((code.positions(0, 333), code.positions(333, 1000))), whole
    )


def test_linearity() -> None:
    """The property the VOLE relies on: encode(x ^ y) = encode(x) ^ encode(y)."""
    code = exacc.ExAccCode(64, 128, 7, secrets.token_bytes(16))
    x = np.frombuffer(secrets.token_bytes(128 * 16), dtype=np.uint8).reshape(128, 16)
    y = np.frombuffer(secrets.token_bytes(128 * 16), dtype=np.uint8).reshape(128, 16)
    both = code.dual_encode(x ^ y)
    assert np.array_equal(both, code.dual_encode(x.copy()) ^ code.dual_encode(y.copy()))


def test_checks() -> None:
    with pytest.raises(ValueError, match="k <= N"):
        exacc.ExAccCode(10, 5, 7, bytes(16))
    code = exacc.ExAccCode(4, 8, 7, bytes(16))
    with pytest.raises(ValueError, match="need"):
        code.dual_encode(np.zeros((8, 12), dtype=np.uint8))
    with pytest.raises(ValueError, match="distinct"):
        exacc.SparseVector.of(8, np.array([1, 1]), np.zeros((2, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="range"):
        exacc.SparseVector.of(8, np.array([8]), np.zeros((1, 8), dtype=np.uint8))
