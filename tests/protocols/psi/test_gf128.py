from __future__ import annotations

import secrets

import numpy as np
import pytest

from privledger.protocols.psi import gf128


def _rand() -> int:
    return secrets.randbits(128)


def test_reduction_polynomial() -> None:
    # X^127 * X = X^128 = X^7 + X^2 + X + 1
    assert gf128.mul(1 << 127, 2) == 0x87
    assert gf128.mul(1 << 127, 1 << 127) == gf128.mul(0x87, 1 << 126)


def test_field_laws() -> None:
    for _ in range(20):
        a, b, c = _rand(), _rand(), _rand()
        assert gf128.mul(a, b) == gf128.mul(b, a)
        assert gf128.mul(a, b ^ c) == gf128.mul(a, b) ^ gf128.mul(a, c)
        assert gf128.mul(gf128.mul(a, b), c) == gf128.mul(a, gf128.mul(b, c))
        assert gf128.mul(a, 1) == a


def test_fermat_inverse() -> None:
    """a^(2^128 - 1) = 1 for a != 0: the multiplicative group has order 2^128 - 1, which only
    holds if the modulus is irreducible and the multiplication right."""
    a = _rand() | 1
    power, result = a, 1
    for _ in range(128):  # result = a^(2^128 - 1) = prod a^(2^i)
        result = gf128.mul(result, power)
        power = gf128.mul(power, power)
    assert result == 1


def test_known_products() -> None:
    # (X + 1)^2 = X^2 + 1; X^64 * X^64 = X^128 = 0x87
    assert gf128.mul(3, 3) == 5
    assert gf128.mul(1 << 64, 1 << 64) == 0x87
    assert gf128.to_int(gf128.from_int(0x1234)) == 0x1234


def test_combine_x_powers_matches_reference() -> None:
    """Against the schoolbook product: random groups, and groups of all-ones elements (every
    overflow bit set, the largest fold)."""
    values = np.frombuffer(secrets.token_bytes(16 * 64 * 6), dtype=np.uint8).reshape(6, 64, 16)
    values = np.concatenate((values, np.full((1, 64, 16), 0xFF, dtype=np.uint8)))
    got = gf128.combine_x_powers(values.view("<u8")).view(np.uint8).reshape(-1, 16)
    for row, group in zip(got, values, strict=True):
        expect = 0
        for k, value in enumerate(group):
            expect ^= gf128.mul(gf128.to_int(value), 1 << k)
        assert gf128.to_int(row) == expect
    with pytest.raises(ValueError, match="need"):
        gf128.combine_x_powers(np.zeros((2, 63, 2), dtype=np.uint64))


@pytest.mark.parametrize("width", [8, 16])
def test_fixed_multiplier_matches_reference(width: int) -> None:
    delta = secrets.token_bytes(16)
    mul = gf128.FixedMultiplier(delta, width)
    operands = np.frombuffer(secrets.token_bytes(width * 50), dtype=np.uint8).reshape(50, width)
    got = mul(operands)
    for row, z in zip(got, operands, strict=True):
        expect = gf128.mul(gf128.to_int(delta), int.from_bytes(bytes(z), "little"))
        assert gf128.to_int(row) == expect
    with pytest.raises(ValueError, match="operands"):
        mul(np.zeros((3, width - 1), dtype=np.uint8))
