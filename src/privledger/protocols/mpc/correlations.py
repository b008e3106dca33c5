"""The layout of the dealer's correlations, which a party (``sharing.Party``) and the dealer
(:mod:`privledger.protocols.mpc.dealer`) expand alike from the party's seed: how many words each
component has, which of them the group lead gets from the dealer, and the nonce each is expanded
under."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np

from privledger.protocols.mpc.ring import U64

Group = tuple[int, ...]
CorrelationOp = Literal["beaver", "and", "edabit", "dabit", "trunc", "inner"]

MAX_CORRELATIONS: Final = 1 << 26  # per dealer request (512 MiB of words)
OP_PARTS: Final[dict[str, int]] = {
    "beaver": 3,
    "and": 3,
    "edabit": 2,
    "dabit": 2,
    "trunc": 3,
    "inner": 2,
}
_DST: Final = b"privledger/mpc/v2"


def layout(op: str, count: int) -> list[int]:
    """Word counts of an op's components (an inner-product correlation ends with a scalar)."""
    sizes = [count] * OP_PARTS[op]
    if op == "inner":
        sizes[1] = 1
    return sizes


def cut(values: U64, sizes: Sequence[int]) -> list[U64]:
    bounds = np.cumsum([0, *sizes])
    return [values[bounds[k] : bounds[k + 1]] for k in range(len(sizes))]


def lead_corrections(op: str) -> int:
    """How many of an op's components the lead receives from the dealer (the rest from its seed)."""
    if op == "inner":
        return 1  # the lead's scalar
    if op == "trunc":
        return 3  # r, r >> f and msb(r) are correlated: all three are dealer-corrected
    return 2 if op == "dabit" else 1


def correlation_nonce(op: str, group: Group, label: int, member: int, frac_bits: int) -> bytes:
    text = f"{op}|{','.join(map(str, group))}|{label}|{member}|{frac_bits}".encode()
    return hashlib.sha256(_DST + b"|" + text).digest()[:16]
