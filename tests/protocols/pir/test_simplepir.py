from __future__ import annotations

import secrets

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privledger.protocols.pir import simplepir
from privledger.protocols.pir.simplepir import Client, Params, PirError, Server

MASK = np.uint64((1 << 32) - 1)


def _params(rows: int, cols: int) -> Params:
    return Params(rows, cols, secrets.token_bytes(simplepir.SEED_BYTES))


def _ks(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    grid = np.sort(np.concatenate([x, y]))
    fx = np.searchsorted(np.sort(x), grid, side="right") / x.size
    fy = np.searchsorted(np.sort(y), grid, side="right") / y.size
    return float(np.abs(fx - fy).max())


@pytest.mark.parametrize("nbytes", [0, 1, 17, (1 << 20) - 1, 1 << 20, 3 * (1 << 20) + 5])
def test_keystream_is_aes_ctr_from_counter_zero(nbytes: int) -> None:
    """Chunked into a separate output buffer (cryptography >= 51 refuses aliasing), the stream is
    still AES-256-CTR of zeros, across chunk boundaries."""
    key = secrets.token_bytes(32)
    expected = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(bytes(nbytes))
    assert simplepir.keystream(key, nbytes).tobytes() == expected


def test_correctness_bound_matches_paper() -> None:
    assert simplepir.max_plaintext_modulus(1 << 13) == 991  # SimplePIR Sec. 4.2 table
    assert simplepir.INNER_CHUNK == 8224


@pytest.mark.parametrize(("rows", "cols"), [(40, 37), (16, simplepir.INNER_CHUNK + 300)])
def test_hint_and_answers_exact(rows: int, cols: int) -> None:
    rng = np.random.default_rng(1)
    params = _params(rows, cols)
    db = rng.integers(0, 256, (rows, cols), dtype=np.uint8)
    server = Server(params, db)
    a = simplepir.matrix_a(params).astype(np.uint64)
    assert np.array_equal(server.hint(), (db.astype(np.uint64) @ a) & MASK)
    client = Client(params, server.hint())
    for k in (1, 2, 5):
        cols_wanted = rng.integers(0, cols, k)
        state, queries = client.query(cols_wanted)
        assert queries.shape == (k, cols) and queries.dtype == np.uint32
        answers = server.answer(queries)
        expect = (db.astype(np.uint64) @ queries.T.astype(np.uint64)) & MASK
        assert np.array_equal(answers, expect.T)
        assert np.array_equal(client.decode(state, answers), db[:, cols_wanted].T)


def test_mul_uniform_exact() -> None:
    rng = np.random.default_rng(2)
    mat = rng.integers(0, 1 << 32, (50, simplepir.LWE_N), dtype=np.uint64)
    vec = rng.integers(0, 1 << 32, (simplepir.LWE_N, 3), dtype=np.uint64)
    got = simplepir.mul_uniform(mat.astype(np.float64), vec.astype(np.uint32))
    # reference in Python integers (no overflow)
    ref = [
        [sum(int(a) * int(b) for a, b in zip(row, col, strict=True)) % (1 << 32) for col in vec.T]
        for row in mat[:5]
    ]
    assert np.array_equal(got[:5], np.array(ref, dtype=np.uint32))


def test_error_distribution() -> None:
    errors = simplepir.sample_error(simplepir.keystream(secrets.token_bytes(32), 8 * 200_000))
    signed = errors.astype(np.int32).astype(np.float64)
    assert abs(signed.mean()) < 0.1
    assert abs(signed.std() - simplepir.SIGMA) < 0.1
    assert np.abs(signed).max() <= 12 * simplepir.SIGMA + 1


def test_query_distribution_independent_of_column() -> None:
    rows, cols, count = 8, 256, 400
    params = _params(rows, cols)
    client = Client(params, Server(params, np.zeros((rows, cols), np.uint8)).hint())
    _, q1 = client.query([3] * count)
    _, q2 = client.query([200] * count)
    # the entries where Delta is (or is not) added look alike across the two columns
    for col in (3, 200):
        assert _ks(q1[:, col].astype(np.float64), q2[:, col].astype(np.float64)) < 0.14
    for q in (q1, q2):
        values = q.astype(np.float64) / 2**32
        assert abs(values.mean() - 0.5) < 0.01 and abs(values.var() - 1 / 12) < 0.005
    b1, b2 = q1.view(np.uint8).ravel(), q2.view(np.uint8).ravel()
    h1, h2 = np.bincount(b1, minlength=256), np.bincount(b2, minlength=256)
    expected = b1.size / 256
    assert ((h1 - expected) ** 2 / expected).sum() < 400  # chi-square, 255 dof
    assert ((h2 - expected) ** 2 / expected).sum() < 400
    assert _ks(b1.astype(np.float64), b2.astype(np.float64)) < 0.01


def test_wrong_inputs_refused() -> None:
    with pytest.raises(PirError, match="seed"):
        Params(4, 4, b"short")
    with pytest.raises(PirError, match="at least"):
        Params(0, 4, bytes(32))
    with pytest.raises(PirError, match=r"too many|exceed"):
        Params(4, 1 << 21, bytes(32))
    params = _params(4, 8)
    with pytest.raises(PirError, match="uint8"):
        Server(params, np.zeros((4, 9), np.uint8))
    server = Server(params, np.zeros((4, 8), np.uint8))
    with pytest.raises(PirError, match="queries"):
        server.answer(np.zeros((1, 9), np.uint32))
    client = Client(params, server.hint())
    with pytest.raises(PirError, match="out of range"):
        client.query([8])
    with pytest.raises(PirError, match="hint"):
        Client(params, np.zeros((5, simplepir.LWE_N), np.uint32))
