"""Known answers and consistency of the Paillier arithmetic of the vertical GBDT
(:mod:`privledger.protocols.fl.gbdt_paillier`): DJN short-randomness encryption with CRT and
fixed-base tables, the randomisers made ahead, signed packing, paired histograms."""

from __future__ import annotations

import secrets
import time

import gmpy2  # type: ignore[import-untyped]
import numpy as np
import pytest

from privledger.protocols.fl.gbdt_paillier import (
    RANDOMISER_BITS,
    CipherSpace,
    FixedBase,
    GradientPacking,
    LabelKey,
    PaillierError,
)


@pytest.fixture(scope="module")
def key() -> LabelKey:
    return LabelKey(1024)


def test_fixed_base_powers_equal_powmod() -> None:
    modulus = gmpy2.mpz(secrets.randbits(512) | 1)
    base = gmpy2.mpz(secrets.randbelow(int(modulus)))
    table = FixedBase(base, modulus, 6)
    for exponent in [0, 1, 255, 256, 2**48 - 1, *(secrets.randbits(48) for _ in range(20))]:
        digits = exponent.to_bytes(6, "little")
        assert table.power(digits) == gmpy2.powmod(base, exponent, modulus)
    with pytest.raises(ValueError, match="6 bytes"):
        table.power(b"\x01")


def test_the_crt_randomiser_is_h_s_to_the_exponent(key: LabelKey) -> None:
    n2 = key.space.n2
    for _ in range(5):
        exponent = secrets.token_bytes(RANDOMISER_BITS // 8)
        expected = gmpy2.powmod(key.space.h_s, int.from_bytes(exponent, "little"), n2)
        assert key.randomiser(exponent) == expected
    # h_s = h^n is an n-th residue: a randomiser is an encryption of zero
    assert key.decrypt(key.randomisers(3)) == [0, 0, 0]


def test_decryption_inverts_encryption_with_and_without_randomisers_made_ahead(
    key: LabelKey,
) -> None:
    n = int(key.n)
    plaintexts = [0, 1, 2**100 + 7, -1, -(2**80), n - 1, *(secrets.randbelow(n) for _ in range(20))]
    assert key.decrypt(key.encrypt(plaintexts)) == [m % n for m in plaintexts]
    key.precompute(10)
    try:
        for _ in range(3):  # more than the 10 made ahead: the rest is made on demand
            with key.idle():  # the randomisers are made while the key's user waits
                time.sleep(0.2)
            ciphers = key.encrypt(plaintexts)
            assert key.decrypt(ciphers) == [m % n for m in plaintexts]
    finally:
        key.close()


def test_ciphertexts_look_uniform(key: LabelKey) -> None:
    ciphers = [int(c) for c in key.encrypt([5] * 400)]
    assert len(set(ciphers)) == len(ciphers)
    n2_bits = int(key.space.n2).bit_length()
    # none far below n^2: 40 leading zero bits in one of 400 has probability ~2^-31 (16 bits,
    # as before, ~1%: CI met it)
    assert min(c.bit_length() for c in ciphers) > n2_bits - 40
    low = np.array([c & 0xFFFF for c in ciphers]) / 65536.0
    assert abs(low.mean() - 0.5) < 0.05  # sd of the mean of 400 uniforms: ~0.014
    bits = np.array([[c >> k & 1 for k in range(0, 2000, 97)] for c in ciphers])
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.1)


def test_zeros_re_randomise_without_changing_the_plaintext(key: LabelKey) -> None:
    space = CipherSpace(key.n, key.space.h_s)
    cipher = key.encrypt([12345])[0]
    fresh = [cipher * zero % space.n2 for zero in space.zeros(3)]
    space.precompute(2)
    try:
        with space.idle():
            time.sleep(0.2)
        fresh += [cipher * zero % space.n2 for zero in space.zeros(3)]
    finally:
        space.close()
    assert len({int(c) for c in fresh}) == 6
    assert key.decrypt(fresh) == [12345] * 6


def test_a_bad_public_key_is_refused(key: LabelKey) -> None:
    with pytest.raises(PaillierError, match="unit"):
        CipherSpace(key.n, key.n)
    with pytest.raises(PaillierError, match="modulus"):
        CipherSpace(2**1100, key.space.h_s)


@pytest.mark.parametrize("rows", [30, 200])  # single columns, then pairs of columns
def test_column_sums_and_packed_prefix_sums_decrypt_to_the_plaintext_sums(
    key: LabelKey, rows: int
) -> None:
    packing = GradientPacking.for_rows(rows, 24)
    rng = np.random.default_rng(rows)
    grad, hess = rng.uniform(-1, 1, rows), rng.uniform(0, 0.25, rows)
    grad[: rows // 2] = -1.0  # negative sums, with borrows between slots
    ciphers = key.encrypt(packing.encode(grad, hess))
    widths = [5, 4, 3]
    bins = np.stack([rng.integers(0, w, rows) for w in widths], axis=1).astype(np.uint8)
    sums = key.space.column_sums(ciphers, bins, widths)
    assert [len(s) for s in sums] == widths
    for j, width in enumerate(widths):
        left = key.space.prefix_sums(sums[j])
        packed = key.space.pack(left, packing.item_bits)
        assert len(packed) == 1 < len(left)
        values = key.space.unpack(key.decrypt(packed), packing.item_bits, len(left))
        total_grad, total_hess = packing.decode(values)
        for b in range(width - 1):
            chosen = bins[:, j] <= b
            assert abs(total_grad[b] - grad[chosen].sum()) < 1e-5
            assert abs(total_hess[b] - hess[chosen].sum()) < 1e-5


def test_subtraction_gives_the_sibling(key: LabelKey) -> None:
    packing = GradientPacking.for_rows(40, 24)
    grad, hess = np.linspace(-1, 1, 40), np.linspace(0, 0.25, 40)
    ciphers = key.encrypt(packing.encode(grad, hess))
    bins = (np.arange(40) % 4).astype(np.uint8)[:, None]
    parent = key.space.column_sums(ciphers, bins, [4])[0]
    child = key.space.column_sums(ciphers[:15], bins[:15], [4])[0]
    other = key.space.subtract(parent, child)
    packed = key.space.pack(other, packing.item_bits)
    values = key.space.unpack(key.decrypt(packed), packing.item_bits, 4)
    total_grad, total_hess = packing.decode(values)
    for b in range(4):
        rows = np.flatnonzero(bins[:, 0] == b)
        rows = rows[rows >= 15]
        assert abs(total_grad[b] - grad[rows].sum()) < 1e-6
        assert abs(total_hess[b] - hess[rows].sum()) < 1e-6
