"""The RR22 OKVS: clustered three-hash sparse rows plus binary dense columns.

Raghuraman and Rindal, "Blazing Fast PSI from Improved OKVS and Subfield VOLE" (CCS 2022,
ePrint 2022/320), Sec. 3: an oblivious key-value store whose row for key ``x`` is
``e_{h_0(x)} + e_{h_1(x)} + e_{h_2(x)} || r(x)``: three distinct *sparse* positions and a
binary *dense* part ``r(x)`` of ``g + lambda`` bits. Encoding solves ``row(x) . D = v(x)`` for
all keys; decoding is ``D[h_0] + D[h_1] + D[h_2] + r(x) . D_dense``. Values are rows of ``W``
bytes added by XOR (``W`` = 8, 16 or 24), so the same table can carry GF(2^128) elements, the
64-bit elements of the subfield VOLE in :mod:`.rr22`, or both side by side.

Parameters -- the paper's fit (its Sec. 3.3; the same formula as the authors' volePSI
``PaxosParam::init`` and SecretFlow's port), for weight ``w = 3`` and ``N`` keys per cluster::

    lambda_vs_e = 2^(0.555 log2 N + 0.093 log2(w)^3 - 1.01 log2(w)^2 + 2.925 log2(w) - 0.133)
    e = (lambda + 9.2 + lambda_vs_e * 1.223) / lambda_vs_e      (sparse columns: ceil(e N))
    g = floor(lambda / ((w - 2) log2(e N)))                      (dense columns: g + lambda)

so that peeling leaves a 2-core of more than ``g`` rows with probability at most
``2^-lambda``, and then ``g + lambda`` random binary dense columns solve the core except with
probability ``2^-lambda``. (e = 1.2274 at N = 2^20, 1.246 at 2^16, 1.268 at 2^14.)

Clustering (the paper's binning): keys go to ``B = ceil(n / CLUSTER_ITEMS)`` clusters by one
hash; every cluster has its own sparse and dense part sized for ``N`` keys, where ``N`` is the
bound that no cluster exceeds except with probability ``2^-42`` (a binomial tail), and each
cluster is sized by the formula for ``lambda_c = 42 + log2 B``. Failure: a cluster overflows
(``<= 2^-42``), or some cluster's core exceeds ``g`` or its dense system is singular (each
``<= 2^-lambda_c``, so ``<= 2 B 2^-lambda_c = 2^-41`` for all clusters): in all
``<= 2^-42 + 2^-41 < 2^-40`` (:data:`FAILURE_BITS`). Clusters keep the work local: the paper
does it for the cache, and so do we -- one cluster of ~2^16 keys at a time peels in the L2
cache, and the peeling memory stays bounded at 2^24 keys.

Encoding (:func:`encode`), cluster by cluster: (1) Peel the 3-uniform hypergraph: repeatedly
remove a key owning a cell of degree one (:func:`peel`, a compiled kernel, :mod:`.jit`, with a
stack of such cells). (2) The unpeeled keys (the 2-core) touch only cells no peeled key owns;
those are set to zero and the core's equations ``r(x) . D_dense = v(x)`` are solved per
cluster by Gaussian elimination over GF(2) (a few rows, rare). (3) Peeled keys are assigned in
reverse order of peeling with the dense contribution folded into their values. Measured at
2^20 keys on this machine: ~0.12 s (peeling 0.05, hashing 0.02, assignment 0.013), against
0.26-0.36 s for numpy's vectorised peeling rounds. Free cells are zero: the table is *not*
pseudorandom by itself (RR22 masks it with the VOLE vector ``A`` before it is sent). A failure
raises :class:`OkvsError`, never a wrong table; the hash seed is drawn once by the caller, so
which seed is used reveals nothing about the keys.

Hashing: ``AES_k1(x)`` gives the cluster and the three positions (32-bit words, multiply-shift
range reduction; positions drawn as distinct by the usual shift trick); ``AES_k2(x)`` gives the
dense bits (low 64-bit word) and a 64-bit value ``H(x)`` (high word) that RR22 encodes.
``k1 || k2`` is the 32-byte seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privledger.protocols.psi import jit, ot

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

WEIGHT = 3
FAILURE_BITS = 40
SEED_BYTES = 32
KEY_BYTES = 16
CLUSTER_ITEMS = 1 << 16
MAX_DENSE = 64
GROUP_ITEMS = 1 << 16  # keys solved together: one cluster, its peeling arrays in cache
WIDTHS = (8, 16, 24)  # bytes per value: the kernels XOR rows of 1 to 3 words in registers
HASH_CHUNK = 1 << 14  # keys hashed / decoded together: temporaries stay in cache (no page faults)


class OkvsError(Exception):
    """The keys could not be encoded (probability <= 2^-40 for distinct keys; a key given
    twice with two different values always fails)."""


def expansion(items: int, ssp: float) -> float:
    """RR22's sparse expansion ``e`` for ``items`` keys and ``ssp`` bits (weight 3)."""
    lambda_vs_e = _lambda_vs_e(items)
    offset = -9.2 - lambda_vs_e * 1.223
    return (ssp - offset) / lambda_vs_e


def core_bound(items: int, ssp: float) -> int:
    """RR22's ``g``: the 2-core size that is exceeded with probability ``<= 2^-ssp``."""
    e = expansion(items, ssp)
    return math.floor(ssp / ((WEIGHT - 2) * math.log2(e * max(items, 2))))


def failure_bits(items: int, sparse: int) -> float:
    """The formula read the other way: ``lambda`` for ``items`` keys in ``sparse`` columns
    (the 2-core exceeds ``g`` with probability about ``2^-lambda``)."""
    return _lambda_vs_e(items) * (sparse / max(items, 2) - 1.223) - 9.2


def _lambda_vs_e(items: int) -> float:
    log_n = math.log2(max(items, 2))
    log_w = math.log2(WEIGHT)
    return float(
        2.0 ** (0.555 * log_n + 0.093 * log_w**3 - 1.01 * log_w**2 + 2.925 * log_w - 0.133)
    )


def cluster_capacity(items: int, clusters: int, ssp: float) -> int:
    """Smallest ``N`` with ``clusters * P[Binomial(items, 1/clusters) > N] <= 2^-ssp``."""
    if clusters == 1:
        return items
    p = 1.0 / clusters
    mean = items * p
    sigma = math.sqrt(mean * (1 - p))
    top = min(items, math.ceil(mean + 20 * sigma + 64))
    log_pmf = [
        math.lgamma(items + 1)
        - math.lgamma(k + 1)
        - math.lgamma(items - k + 1)
        + k * math.log(p)
        + (items - k) * math.log1p(-p)
        for k in range(math.floor(mean), top + 1)
    ]
    budget = -ssp * math.log(2) - math.log(clusters)
    tail = -math.inf  # log P[X > k], accumulated from the top
    for offset in range(len(log_pmf) - 1, -1, -1):
        k = math.floor(mean) + offset
        if tail > budget:
            return k + 1
        tail = float(np.logaddexp(tail, log_pmf[offset]))
    return math.floor(mean)  # pragma: no cover - the tail at the mean is ~1/2


@dataclass(frozen=True)
class OkvsParams:
    """Sizes of an OKVS for ``items`` keys: ``clusters`` clusters of ``sparse`` + ``dense``
    cells, each for at most ``capacity`` keys."""

    items: int
    clusters: int
    capacity: int
    sparse: int
    dense: int

    @property
    def cluster_cells(self) -> int:
        return self.sparse + self.dense

    @property
    def size(self) -> int:
        """Total cells ``M``."""
        return self.clusters * self.cluster_cells

    @classmethod
    def for_items(
        cls, items: int, ssp: float = FAILURE_BITS + 2, cluster_items: int = CLUSTER_ITEMS
    ) -> OkvsParams:
        """Parameters for ``items`` keys with failure ``< 2^-(ssp - 2)`` (module docstring)."""
        if items < 0:
            raise ValueError("negative item count")
        clusters = max(1, math.ceil(items / cluster_items))
        capacity = max(1, cluster_capacity(items, clusters, ssp))
        local_ssp = ssp + math.log2(clusters) if clusters > 1 else ssp
        sparse = max(WEIGHT, math.ceil(expansion(capacity, local_ssp) * capacity))
        dense = core_bound(capacity, local_ssp) + math.ceil(local_ssp)
        if dense > MAX_DENSE:  # pragma: no cover - not reached for ssp <= 48
            raise ValueError("too many dense columns for a 64-bit mask")
        return cls(items, clusters, capacity, sparse, dense)


@dataclass(frozen=True)
class Rows:
    """The rows of some keys: ``cells (3, n)`` global sparse cells, ``cluster (n,)``, the dense
    bits ``dense (n,)`` and the hashed value ``value (n,)`` (both 64-bit words)."""

    cells: I64
    cluster: I64
    dense: U64
    value: U64


def _aes(key: bytes, keys: U8) -> U8:
    out = np.empty((len(keys) + 1, KEY_BYTES), dtype=np.uint8)
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    encryptor.update_into(np.ascontiguousarray(keys).reshape(-1).data, out.reshape(-1).data)
    return out[: len(keys)]


def _reduce(words: npt.NDArray[np.uint32], bound: int, out: I64) -> I64:
    """``(w * bound) >> 32`` into ``out`` (multiply-shift range reduction)."""
    wide = out.view(np.uint64)
    wide[:] = words
    wide *= np.uint64(bound)
    wide >>= np.uint64(32)
    return out


def rows(params: OkvsParams, seed: bytes, keys: U8, out: Rows | None = None) -> Rows:
    """Hash ``(n, 16)`` keys to their rows under the 32-byte ``seed`` (into ``out`` when
    given: rows of ``n`` keys, contiguous arrays)."""
    if len(seed) != SEED_BYTES:
        raise ValueError("OKVS seed must be 32 bytes")
    if keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
        raise ValueError("OKVS keys are (n, 16) bytes")
    n = len(keys)
    if out is None:
        out = Rows(
            np.empty((WEIGHT, n), dtype=np.int64),
            np.empty(n, dtype=np.int64),
            np.empty(n, dtype=np.uint64),
            np.empty(n, dtype=np.uint64),
        )
    elif out.cells.shape != (WEIGHT, n) or len(out.value) != n:
        raise ValueError("output rows of another size")
    first = _aes(seed[:16], keys).view("<u4").reshape(n, 4)
    second = _aes(seed[16:], keys).view("<u8").reshape(n, 2)
    mask = np.uint64((1 << params.dense) - 1) if params.dense < 64 else np.uint64(2**64 - 1)
    _hash_rows(
        first,
        second,
        params.sparse,
        params.clusters,
        params.cluster_cells,
        mask,
        out.cells,
        out.cluster,
        out.dense,
        out.value,
    )
    return out


@jit.kernel
def _hash_rows(
    first: npt.NDArray[np.uint32],
    second: U64,
    sparse: int,
    clusters: int,
    cluster_cells: int,
    mask: np.uint64,
    cells: I64,
    cluster: I64,
    dense: U64,
    value: U64,
) -> None:
    """:func:`rows` from the two AES blocks of each key: three distinct sparse positions
    ``(w_i (s - i)) >> 32`` moved past the smaller ones (uniform over ordered triples), the
    cluster ``(w_3 B) >> 32`` and its first cell added, the dense bits and ``H(x)``."""
    high = np.uint64(32)
    for i in range(len(first)):
        h0 = np.int64((np.uint64(first[i, 0]) * np.uint64(sparse)) >> high)
        h1 = np.int64((np.uint64(first[i, 1]) * np.uint64(sparse - 1)) >> high)
        h2 = np.int64((np.uint64(first[i, 2]) * np.uint64(sparse - 2)) >> high)
        if h1 >= h0:
            h1 += 1
        low, top = (h0, h1) if h0 < h1 else (h1, h0)
        if h2 >= low:
            h2 += 1
        if h2 >= top:
            h2 += 1
        c = np.int64((np.uint64(first[i, 3]) * np.uint64(clusters)) >> high)
        base = c * cluster_cells if clusters > 1 else np.int64(0)
        cells[0, i] = h0 + base
        cells[1, i] = h1 + base
        cells[2, i] = h2 + base
        cluster[i] = c
        dense[i] = second[i, 0] & mask
        value[i] = second[i, 1]


def rows_in_chunks(params: OkvsParams, seed: bytes, keys: U8) -> list[Rows]:
    """:func:`rows` of ``keys[lo : lo + HASH_CHUNK]`` for every chunk, kept (to decode chunk by
    chunk later) in one :class:`_RowSpace`: as separate arrays, ~50 MB of small allocations at
    2^20 keys were ~12K fresh 4 KiB pages, ~0.1 s of page faults on this machine; allocated at
    once they are given huge pages."""
    n, chunk = len(keys), HASH_CHUNK
    space = _RowSpace(n)
    return [
        rows(params, seed, keys[lo : lo + chunk], space.rows(lo, min(lo + chunk, n)))
        for lo in range(0, n, chunk)
    ]


class _RowSpace:
    """Arrays for the rows of ``n`` keys, allocated once, lent out as the contiguous
    :class:`Rows` of any range of them (:func:`rows`'s ``out``)."""

    def __init__(self, n: int) -> None:
        self._cells = np.empty(WEIGHT * n, dtype=np.int64)
        self._words = np.empty((3, n), dtype=np.int64)

    def rows(self, lo: int, hi: int) -> Rows:
        return Rows(
            self._cells[WEIGHT * lo : WEIGHT * hi].reshape(WEIGHT, hi - lo),
            self._words[0, lo:hi],
            self._words[1, lo:hi].view(np.uint64),
            self._words[2, lo:hi].view(np.uint64),
        )


def cluster_of(params: OkvsParams, seed: bytes, keys: U8) -> npt.NDArray[np.integer]:
    """The cluster of each key (the fourth word of :func:`rows`'s first AES block), computed
    in chunks of :data:`HASH_CHUNK` keys."""
    kind = np.uint16 if params.clusters <= 1 << 16 else np.int64
    out: npt.NDArray[np.integer] = np.empty(len(keys), dtype=kind)
    for lo in range(0, len(keys), HASH_CHUNK):
        block = _aes(seed[:16], keys[lo : lo + HASH_CHUNK]).view("<u4").reshape(-1, 4)
        wide = block[:, 3].astype(np.uint64)
        wide *= np.uint64(params.clusters)
        wide >>= np.uint64(32)
        out[lo : lo + len(wide)] = wide
    return out


def by_cluster(params: OkvsParams, seed: bytes, keys: U8) -> tuple[I64, I64]:
    """The keys' order by cluster (stable) and where each cluster's keys start in it:
    ``(n,)`` and ``(clusters + 1,)``. Keys in this order hash to one cluster's cells at a
    time, which stay in cache."""
    clusters = cluster_of(params, seed, keys)
    loads = np.bincount(clusters, minlength=params.clusters)
    starts = np.concatenate(([0], np.cumsum(loads))).astype(np.int64)
    order = np.empty(len(keys), dtype=np.int64)
    # a counting sort (numpy's stable argsort, a radix sort, took ~2x the time and 8n bytes of
    # scratch, fresh pages every time)
    _counting_order(clusters, starts[:-1].copy(), order)
    return order, starts


@jit.kernel
def _counting_order(clusters: npt.NDArray[np.integer], places: I64, order: I64) -> None:
    """:func:`by_cluster`'s order: key ``i`` at the next place of its cluster (``places`` the
    clusters' starts, advanced as they fill; ``clusters`` of :func:`cluster_of`'s type)."""
    for i in range(len(clusters)):
        cluster = clusters[i]
        order[places[cluster]] = i
        places[cluster] += 1


def encode(
    params: OkvsParams,
    seed: bytes,
    keys: U8,
    values: U8 | None = None,
    grouping: tuple[I64, I64] | None = None,
    *,
    clustered: bool = False,
) -> U8:
    """The ``(M, W)`` table encoding distinct keys ``(n, 16)`` to ``values`` ``(n, W)`` --
    by default to their own 64-bit hashed values ``H(x)`` (``W = 8``, RR22's encoding).

    Clusters are solved in groups of about :data:`GROUP_ITEMS` keys (one cluster by default):
    the peeling arrays stay in cache and small however many keys there are. ``grouping`` is
    :func:`by_cluster` of the keys when the caller has it; with ``clustered``, the keys (and
    values) are in that order already and only its cluster starts are read."""
    if values is not None and (
        values.ndim != 2 or len(values) != len(keys) or values.shape[1] not in WIDTHS
    ):
        raise ValueError("need (n, W) values, W = 8, 16 or 24, one per key")
    if len(keys) > params.items:
        raise ValueError("more keys than the OKVS was sized for")
    width = 8 if values is None else values.shape[1]
    per_group = max(1, GROUP_ITEMS // params.capacity)
    if params.clusters <= per_group:
        hashed = rows(params, seed, keys)
        return encode_rows(params, hashed, _values(hashed, values))
    order, starts = grouping if grouping is not None else by_cluster(params, seed, keys)
    if np.diff(starts).max() > params.capacity:
        raise OkvsError("an OKVS cluster overflowed")
    table = np.empty((params.size, width), dtype=np.uint8)
    cells = params.cluster_cells
    for first in range(0, params.clusters, per_group):
        last = min(first + per_group, params.clusters)
        if clustered:
            span = slice(starts[first], starts[last])
            hashed = rows(params, seed, keys[span])
            local = _values(hashed, None if values is None else values[span])
        else:
            chosen = order[starts[first] : starts[last]]
            hashed = rows(params, seed, ot.take_rows(keys, chosen))
            local = _values(hashed, None if values is None else ot.take_rows(values, chosen))
        table[first * cells : last * cells] = _encode_clusters(params, hashed, local, first, last)
    return table


def _values(hashed: Rows, values: U8 | None) -> U8:
    if values is not None:
        return values
    own: U8 = hashed.value.view(np.uint8).reshape(-1, 8)
    return own


def encode_rows(params: OkvsParams, hashed: Rows, values: U8) -> U8:
    """The whole table for rows already hashed (all clusters at once)."""
    return _encode_clusters(params, hashed, values, 0, params.clusters)


def _encode_clusters(params: OkvsParams, hashed: Rows, values: U8, first: int, last: int) -> U8:
    """The cells of clusters ``first .. last - 1`` for the rows of exactly the keys in them."""
    width = values.shape[1]
    count = last - first
    cluster = hashed.cluster - first
    loads = np.bincount(cluster, minlength=count)
    if loads.size and loads.max() > params.capacity:
        raise OkvsError("an OKVS cluster overflowed")
    cells = hashed.cells - first * params.cluster_cells if first else hashed.cells
    table = np.zeros((count * params.cluster_cells, width), dtype=np.uint8)
    order, own, core = peel(cells, len(table))
    adjusted = np.array(values, dtype=np.uint8, copy=True)
    if core.size:
        dense = _solve_core(params, cluster, hashed.dense, values, core)
        for index, solution in dense.items():
            start = index * params.cluster_cells + params.sparse
            table[start : start + params.dense] = solution
            members = np.flatnonzero(cluster == index)
            adjusted[members] ^= _dense_part(hashed.dense[members], solution)
    _assign(table.view(np.uint64), cells, order, own, adjusted.view(np.uint64))
    return table


def peel(cells: I64, size: int) -> tuple[I64, I64, I64]:
    """Peels the keys' 3-uniform hypergraph on ``size`` cells (``cells`` ``(3, n)``): the
    peeled keys in peeling order, the cell each owns, and the unpeeled keys (the 2-core)."""
    count = cells.shape[1]
    order = np.empty(count, dtype=np.int64)
    own = np.empty(count, dtype=np.int64)
    peeled = _peel(cells, size, order, own)
    alive = np.ones(count, dtype=np.bool_)
    alive[order[:peeled]] = False
    return order[:peeled], own[:peeled], np.flatnonzero(alive)


@jit.kernel
def _peel(cells: I64, size: int, order: I64, own: I64) -> int:
    """:func:`peel`'s kernel: a key owning a cell of degree one is removed, which may leave
    others with such a cell (a stack of them). Per cell its degree and the XOR of its live
    keys' indices, which is the key itself once the degree is one. Writes the peeled keys and
    their own cells in peeling order into ``order`` and ``own``; returns how many."""
    count = cells.shape[1]
    degree = np.zeros(size, dtype=np.int32)
    members = np.zeros(size, dtype=np.int64)
    for key in range(count):
        for h in range(3):
            cell = cells[h, key]
            degree[cell] += 1
            members[cell] ^= key
    stack = np.empty(size, dtype=np.int64)  # a cell is pushed once: its degree only falls
    top = 0
    for cell in range(size):
        if degree[cell] == 1:
            stack[top] = cell
            top += 1
    peeled = 0
    while top:
        top -= 1
        cell = stack[top]
        if degree[cell] != 1:
            continue
        key = members[cell]
        order[peeled] = key
        own[peeled] = cell
        peeled += 1
        for h in range(3):
            other = cells[h, key]
            degree[other] -= 1
            members[other] ^= key
            if degree[other] == 1:
                stack[top] = other
                top += 1
    return peeled


@jit.kernel
def _assign(table: U64, cells: I64, order: I64, own: I64, values: U64) -> None:
    """Peeled keys in reverse order of peeling: a key's own cell (still zero) becomes its value
    plus its other cells, which keys peeled later (assigned earlier) have set."""
    width = table.shape[1]
    for i in range(len(order) - 1, -1, -1):
        key, cell = order[i], own[i]
        h0, h1, h2 = cells[0, key], cells[1, key], cells[2, key]
        w0 = values[key, 0] ^ table[h0, 0] ^ table[h1, 0] ^ table[h2, 0]
        if width > 1:
            w1 = values[key, 1] ^ table[h0, 1] ^ table[h1, 1] ^ table[h2, 1]
            table[cell, 1] = w1
        if width > 2:
            w2 = values[key, 2] ^ table[h0, 2] ^ table[h1, 2] ^ table[h2, 2]
            table[cell, 2] = w2
        table[cell, 0] = w0


@jit.kernel
def _decode(
    table: U64,
    lookup: U64,
    dense_bytes: int,
    cells: I64,
    cluster: I64,
    dense: U64,
    out: U64,
) -> None:
    """:meth:`Decoder.decode_rows`'s kernel: per key, its three cells and one row of each of its
    cluster's byte tables, XORed in registers (rows of 1 to 3 words)."""
    count, width = out.shape
    for i in range(count):
        h0, h1, h2 = cells[0, i], cells[1, i], cells[2, i]
        w0 = table[h0, 0] ^ table[h1, 0] ^ table[h2, 0]
        w1 = w2 = np.uint64(0)
        if width > 1:
            w1 = table[h0, 1] ^ table[h1, 1] ^ table[h2, 1]
        if width > 2:
            w2 = table[h0, 2] ^ table[h1, 2] ^ table[h2, 2]
        row = cluster[i] * dense_bytes * 256
        bits = dense[i]
        for _ in range(dense_bytes):
            at = row + np.int64(bits & np.uint64(255))
            w0 ^= lookup[at, 0]
            if width > 1:
                w1 ^= lookup[at, 1]
            if width > 2:
                w2 ^= lookup[at, 2]
            bits >>= np.uint64(8)
            row += 256
        out[i, 0] = w0
        if width > 1:
            out[i, 1] = w1
        if width > 2:
            out[i, 2] = w2


def _dense_part(bits: U64, solution: U8) -> U8:
    """``r(x) . D_dense`` for a few rows (used for the rare clusters with a core)."""
    out = np.zeros((len(bits), solution.shape[1]), dtype=np.uint8)
    for j in range(len(solution)):
        hit = ((bits >> np.uint64(j)) & np.uint64(1)).astype(np.bool_)
        out[hit] ^= solution[j]
    return out


def _solve_core(
    params: OkvsParams, cluster: I64, dense_bits: U64, values: U8, core: I64
) -> dict[int, U8]:
    """Per cluster with a non-empty core: dense values with ``r(x) . D = v(x)`` on its core
    keys (their sparse cells are left zero); Gaussian elimination over GF(2)."""
    out: dict[int, U8] = {}
    width = values.shape[1]
    for index in np.unique(cluster[core]).tolist():
        keys = core[cluster[core] == index]
        equations = [int(b) for b in dense_bits[keys]]
        rhs = [values[k].copy() for k in keys]
        pivots: list[tuple[int, int]] = []  # (column, equation index)
        for i in range(len(equations)):
            for column, row in pivots:
                if equations[i] >> column & 1:
                    equations[i] ^= equations[row]
                    rhs[i] ^= rhs[row]
            if equations[i] == 0:
                if rhs[i].any():
                    raise OkvsError("OKVS dense system is singular")
                continue
            pivots.append((equations[i].bit_length() - 1, i))
        solution = np.zeros((params.dense, width), dtype=np.uint8)
        for column, row in reversed(pivots):  # back substitution, later pivots first
            acc = rhs[row].copy()
            rest = equations[row] & ~(1 << column)
            while rest:
                low = rest & -rest
                acc ^= solution[low.bit_length() - 1]
                rest ^= low
            solution[column] = acc
        out[index] = solution
    return out


class Decoder:
    """Decodes many keys from one table: the dense part by byte tables (one 256-row table per
    byte of the dense bits and cluster)."""

    def __init__(self, params: OkvsParams, table: U8) -> None:
        if table.ndim != 2 or len(table) != params.size or table.shape[1] not in WIDTHS:
            raise ValueError("table does not match the OKVS parameters")
        self.params = params
        self.table = np.ascontiguousarray(table)
        width = table.shape[1]
        self._bytes = -(-params.dense // 8)
        by_cluster = self.table.reshape(params.clusters, params.cluster_cells, width)
        dense = np.zeros((params.clusters, 8 * self._bytes, width), dtype=np.uint8)
        dense[:, : params.dense] = by_cluster[:, params.sparse :]
        grouped = dense.reshape(params.clusters, self._bytes, 8, width)
        lookup = np.zeros((params.clusters, self._bytes, 256, width), dtype=np.uint8)
        for bit in range(8):  # entries 2^bit .. 2^(bit+1) = the lower ones + dense column
            span = 1 << bit
            lookup[:, :, span : 2 * span] = lookup[:, :, :span] ^ grouped[:, :, bit][:, :, None, :]
        self._lookup = lookup.reshape(-1, width)

    def decode_rows(self, hashed: Rows) -> U8:
        """``row(x) . D`` for hashed keys: ``(n, W)``."""
        out = np.empty((len(hashed.value), self.table.shape[1]), dtype=np.uint8)
        _decode(
            self.table.view(np.uint64),
            self._lookup.view(np.uint64),
            self._bytes,
            hashed.cells,
            hashed.cluster,
            hashed.dense,
            out.view(np.uint64),
        )
        return out

    def decode(self, seed: bytes, keys: U8) -> U8:
        """``row(x) . D`` for ``(n, 16)`` keys, hashed and decoded :data:`HASH_CHUNK` at a
        time: ``(n, W)``."""
        out = np.empty((len(keys), self.table.shape[1]), dtype=np.uint8)
        for lo in range(0, len(keys), HASH_CHUNK):
            chunk = keys[lo : lo + HASH_CHUNK]
            out[lo : lo + len(chunk)] = self.decode_rows(rows(self.params, seed, chunk))
        return out
