"""What every two-party PSI with the common runner interface (KKRT, RR22) must compute: exactly
Python's set intersection, on random, adversarial and degenerate sets, whichever side of the
channel the requester is on and whether or not the provider learns the output."""

from __future__ import annotations

import random
import secrets

import pytest

from privledger.protocols.psi import kkrt, rr22

from .pairs import RunPsi, check_psi, random_items

PROTOCOLS = pytest.mark.parametrize("run_psi", [kkrt.run_psi, rr22.run_psi], ids=["kkrt", "rr22"])


@PROTOCOLS
@pytest.mark.parametrize(("nx", "ny", "common"), [(1, 1, 1), (100, 37, 20), (1000, 3001, 333)])
def test_random_sets_match_python_sets(run_psi: RunPsi, nx: int, ny: int, common: int) -> None:
    rng = random.Random(nx * ny)
    shared = random_items(rng, common)
    x = shared + random_items(rng, nx - common)
    y = random_items(rng, ny - common) + shared
    rng.shuffle(x)
    check_psi(run_psi, x, y)


@PROTOCOLS
def test_medium_case_2_15_without_reveal(run_psi: RunPsi) -> None:
    n = 1 << 15
    shared = [secrets.token_bytes(16) for _ in range(n // 2)]
    x = shared + [secrets.token_bytes(16) for _ in range(n // 2)]
    y = [secrets.token_bytes(16) for _ in range(n // 2)] + shared
    check_psi(run_psi, x, y, reveal=False, side_a=False)


@PROTOCOLS
def test_duplicates_are_removed(run_psi: RunPsi) -> None:
    check_psi(run_psi, [b"a", b"a", b"b", b"c", b"c", b"c"], [b"c", b"c", b"d", b"a"])


@PROTOCOLS
@pytest.mark.parametrize(("x", "y"), [([], [b"a"]), ([b"a"], []), ([], [])])
def test_empty_sets(run_psi: RunPsi, x: list[bytes], y: list[bytes]) -> None:
    check_psi(run_psi, x, y)
    check_psi(run_psi, x, y, reveal=False)


@PROTOCOLS
def test_disjoint_and_identical_sets(run_psi: RunPsi) -> None:
    x = [i.to_bytes(4, "big") for i in range(500)]
    y = [i.to_bytes(4, "big") for i in range(500, 1100)]
    check_psi(run_psi, x, y)
    check_psi(run_psi, x, list(reversed(x)))


@PROTOCOLS
def test_unicode_long_near_identical_and_one_bit_apart_items(run_psi: RunPsi) -> None:
    x = [
        "żółw 🐢".encode(),
        "Ελληνικά".encode(),
        b"",
        b"\x00",
        b"\x00\x00",
        b"x" * 100_000,
        b"x" * 100_001,
        bytes(range(256)) * 40,
    ]
    x += [(1 << i).to_bytes(16, "big") for i in range(128)]
    y = [b"", b"\x00\x00", "żółw 🐢".encode(), b"x" * 100_001, "ελληνικά".encode()]
    y += [(1 << i).to_bytes(16, "big") for i in range(0, 128, 3)]
    check_psi(run_psi, x, y)


@PROTOCOLS
def test_sizes_that_are_not_powers_of_two(run_psi: RunPsi) -> None:
    rng = random.Random(7)
    for nx, ny in ((3, 1000), (1025, 5), (129, 127)):
        x = [rng.randbytes(8) for _ in range(nx)]
        y = [rng.randbytes(8) for _ in range(ny)] + x[: min(nx, ny) // 2]
        check_psi(run_psi, x, y)
