"""Oblivious key-value store (OKVS): a three-hash XOR table built by hypergraph peeling.

Used by :mod:`.multiparty` to turn the KKRT OPRF into an *oblivious programmable* PRF.

Encoding ``N`` distinct 16-byte keys ``k`` with ``W``-byte values ``v(k)`` yields a table ``D``
of ``M = 3 * ceil((1.25 N + 32) / 3)`` cells of ``W`` bytes such that, for every encoded key,
``D[h_0(k)] xor D[h_1(k)] xor D[h_2(k)] = v(k)``. ``h_0, h_1, h_2`` pick one cell in each third
of the table, from ``AES_seed(k)`` (:func:`.cuckoo.locations`, multiply-shift reduction); the
seed is drawn from :mod:`secrets` per encoding and travels with the table. This is the XOR-filter
/ garbled-cuckoo-table construction (Graf and Lemire, "Xor Filters", JEA 2020; Pinkas, Rosulek,
Trieu, Yanai, "PSI from PaXoS", EUROCRYPT 2020, Sec. 4 for its use as an OKVS) with a
*random* fill: the cells that peeling leaves free are uniformly random, so when the encoded
values are themselves pseudorandom the whole table is pseudorandom, and decoding a key that was
not encoded gives a value that is independent of the encoded ones to anyone who does not know
them.

Construction: the keys form a 3-uniform hypergraph on the cells. Peeling repeatedly removes
the keys that own a cell of degree one (vectorised: all such keys of a round at once), then the
cells are assigned in reverse order of rounds; a key's own cell is never a cell of a key peeled
in the same or a later round, so each round's assignment is one vectorised XOR. Peeling fails
(a 2-core remains) with small probability at this load (expansion 1.25 with three segments,
above the 1.222 threshold); the encoder then re-seeds, up to :data:`MAX_ATTEMPTS` times, and
raises :class:`OkvsError` after that -- a failure costs time, never a wrong table. Encoding is
checked by decoding every key before the table is returned.

The choice of a seed that peels is a function of the encoded key set; with ~1 expected attempt
it carries no useful information about the keys (noted as a leakage in :mod:`.multiparty`).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from privledger.protocols.psi import cuckoo

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

EXPANSION = 1.25
SLACK = 32
MAX_ATTEMPTS = 32
KEY_BYTES = 16
SEED_BYTES = cuckoo.SEED_BYTES


class OkvsError(Exception):
    """No peelable table was found within the attempt budget, or the keys are not distinct."""


@dataclass(frozen=True)
class Okvs:
    """An encoded store: the hash seed and the ``(M, W)`` table."""

    seed: bytes
    table: U8

    @property
    def width(self) -> int:
        return int(self.table.shape[1])


def table_cells(count: int) -> int:
    """Number of cells for ``count`` keys (a multiple of 3, at least ``SLACK``)."""
    return 3 * math.ceil((EXPANSION * count + SLACK) / 3)


def positions(keys: U8, seed: bytes, cells: int) -> I64:
    """``(3, N)`` cell indices of each key: one per third of the table."""
    segment = cells // 3
    loc = cuckoo.locations(np.ascontiguousarray(keys), seed, segment)
    loc += (np.arange(3, dtype=np.int64) * segment)[:, None]
    return loc


def encode(keys: U8, values: U8) -> Okvs:
    """Encode distinct ``(N, 16)`` keys with ``(N, W)`` values; random fill elsewhere."""
    if keys.ndim != 2 or keys.shape[1] != KEY_BYTES or values.ndim != 2:
        raise ValueError("need (N, 16) keys and (N, W) values")
    if len(keys) != len(values):
        raise ValueError("one value per key")
    if len(np.unique(keys, axis=0)) != len(keys):
        raise OkvsError("OKVS keys must be distinct")
    cells = table_cells(len(keys))
    for _ in range(MAX_ATTEMPTS):
        seed = secrets.token_bytes(SEED_BYTES)
        loc = positions(keys, seed, cells)
        rounds = _peel(loc, cells)
        if rounds is None:
            continue
        table = _assign(loc, rounds, values, cells)
        okvs = Okvs(seed, table)
        if not np.array_equal(decode(okvs, keys), values):  # pragma: no cover - a bug
            raise OkvsError("OKVS self-check failed")
        return okvs
    raise OkvsError(f"no peelable OKVS for {len(keys)} keys in {cells} cells")


def decode(okvs: Okvs, keys: U8) -> U8:
    """``D[h_0(k)] xor D[h_1(k)] xor D[h_2(k)]`` for each key: ``(N, W)``."""
    table = okvs.table
    if len(keys) == 0:
        return np.zeros((0, table.shape[1]), dtype=np.uint8)
    loc = positions(keys, okvs.seed, len(table))
    out: U8 = table[loc[0]]
    out ^= table[loc[1]]
    out ^= table[loc[2]]
    return out


def _peel(loc: I64, cells: int) -> list[tuple[I64, I64]] | None:
    """Rounds of ``(keys, own cells)`` in peeling order, or ``None`` if a 2-core remains."""
    n = loc.shape[1]
    flat = loc.reshape(-1)
    index = np.tile(np.arange(n, dtype=np.int64), 3)
    degree = np.bincount(flat, minlength=cells).astype(np.int64)
    members = np.zeros(cells, dtype=np.int64)  # xor of the live keys in each cell
    np.bitwise_xor.at(members, flat, index)
    rounds: list[tuple[I64, I64]] = []
    peeled = 0
    candidates = np.flatnonzero(degree == 1)
    while peeled < n:
        candidates = candidates[degree[candidates] == 1]
        if candidates.size == 0:
            return None
        keys, first = np.unique(members[candidates], return_index=True)
        own = candidates[first]
        rounds.append((keys, own))
        peeled += keys.size
        touched = loc[:, keys].reshape(-1)
        np.subtract.at(degree, touched, 1)
        np.bitwise_xor.at(members, touched, np.tile(keys, 3))
        candidates = np.unique(touched)
    return rounds


def _assign(loc: I64, rounds: list[tuple[I64, I64]], values: U8, cells: int) -> U8:
    width = values.shape[1]
    raw = bytearray(secrets.token_bytes(cells * width))
    table = np.frombuffer(raw, dtype=np.uint8).reshape(cells, width)
    for keys, own in reversed(rounds):
        table[own] = 0
        acc = values[keys]  # a copy (fancy indexing)
        acc ^= table[loc[0, keys]]
        acc ^= table[loc[1, keys]]
        acc ^= table[loc[2, keys]]
        table[own] = acc
    return table
