"""Single-server PIR from LWE in the style of SimplePIR (Henzinger, Hong, Corrigan-Gibbs,
Meiklejohn and Vaikuntanathan, "One Server for the Price of Two: Simple and Fast Single-Server
Private Information Retrieval", USENIX Security 2023, ePrint 2022/949); our own numpy code.

The database is a matrix ``D`` of ``rows x cols`` entries in ``Z_p``; one query retrieves one
whole *column* of ``D`` (``rows`` entries). Arithmetic is mod ``q = 2^32`` (uint32 wrap-around).

- Public matrix ``A`` (``cols x n``, uniform mod ``q``): AES-256-CTR keystream of a 32-byte public
  seed (counter from 0), read as little-endian uint32, row-major.
- Offline hint ``H = D A mod q`` (``rows x n``), computed once by the server and downloaded once
  by the client (``offline_bytes``), reusable for any number of queries.
- Query for column ``j``: ``qu = A s + e + Delta u_j mod q`` with ``s`` uniform in ``Z_q^n``
  (fresh per query), ``e`` from the error distribution, ``Delta = q / p`` and ``u_j`` the unit
  vector. Answer: ``ans = D qu mod q``. Decoding: ``ans - H s = Delta D[:, j] + D e``; every
  entry is rounded to the nearest multiple of ``Delta``.

Parameters (SimplePIR Sec. 4.2, "128-bit security"): LWE dimension ``n = 1024``, modulus
``q = 2^32``, error a discrete Gaussian with standard deviation ``sigma = 6.4``; the paper's
lattice-estimator analysis gives 128-bit security for this ``(n, q, sigma)`` with the number of
LWE samples at most ``2^20`` -- here the samples are the ``cols`` query entries, and we refuse
``cols > 2^20``. Correctness: SimplePIR picks the largest ``p`` with
``p^2 <= q / (sqrt(2) sigma sqrt(cols) sqrt(ln(2 / delta)))`` for error ``delta = 2^-40`` (e.g.
``p = 991`` for ``cols = 2^13``); we use ``p = 2^8`` (one byte per entry, so records are plain
byte strings) and check that bound in :func:`Params.__post_init__` (:func:`max_plaintext_modulus`).
With ``p = 256`` and ``cols <= 8192`` the decoding error is far below 2^-40.

Randomness: the secret ``s`` and the error ``e`` are read from an AES-256-CTR keystream whose key
is 32 bytes from :mod:`secrets` (fresh per batch of queries). The error is sampled by inverse-CDF
lookup of 53-bit uniforms in the table of the discrete Gaussian ``Pr[x] ~ exp(-x^2 / (2 sigma^2))``
on ``|x| <= 12 sigma`` (mass beyond it < 2^-100); table precision 2^-53.

Exact matrix products with float64 BLAS. An integer below ``2^53`` is exact in float64, and so
is every partial sum of non-negative integers whose total stays below ``2^53``, whatever the
summation order or FMA use. Hence for ``D`` (entries ``< p = 2^8``) times a uint32 matrix ``X``
(entries ``< 2^32``) we split the *inner* dimension into chunks of at most
``floor((2^53 - 1) / ((p - 1)(2^32 - 1))) = 8224`` columns of ``D`` (:data:`INNER_CHUNK`): each
chunk product is exact in float64, is converted to uint64 and reduced mod ``2^32``, and the chunks
are added mod ``2^32``. That serves the hint ``D A`` (inner dimension ``cols``) and the answers
``D qu``. The server keeps ``D`` as float64 (8 bytes per entry) for this. Client products with
the uniform ``s`` (``A s`` and ``H s``, inner dimension ``n = 1024``) split ``s`` into three
11-bit limbs: ``(2^32 - 1)(2^11 - 1) 1024 < 2^53``, so ``X s_i`` is exact for each limb and
``X s = sum_i 2^(11 i) X s_i mod 2^32``. (Measured on the 2-core test machine: a float64 gemv over
a 6400 x 6400 ``D`` takes ~27 ms, numpy's uint32 matmul ~44 ms, and batched gemm is far faster
per column than either; the hint at that size takes ~1.7 s instead of minutes.)

Security model: the server is semi-honest; the query hides ``j`` under LWE (the query is
pseudorandom in ``Z_q^cols``, whatever ``j``). Leakage to the server: the number of queries and
the public parameters. The client learns the whole column ``j`` -- and, as in SimplePIR, a
malicious client can learn other linear functions of ``D`` (the hint already reveals ``D A``);
callers that must protect other entries encrypt them (see :mod:`.keyword`).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

U8 = npt.NDArray[np.uint8]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

LWE_N = 1024
LOG_Q = 32
Q = 1 << LOG_Q
SIGMA = 6.4
PLAIN_BITS = 8
P = 1 << PLAIN_BITS
DELTA = Q // P
CORRECTNESS_ERROR = 2.0**-40
MAX_SAMPLES = 1 << 20  # cols bound for the paper's 128-bit estimate
SEED_BYTES = 32
_KEYSTREAM_CHUNK = 1 << 20  # zeros encrypted per call: 1 MiB stays in cache
_EXACT = (1 << 53) - 1
INNER_CHUNK = _EXACT // ((P - 1) * (Q - 1))  # 8224
_LIMB_BITS = 11
_LIMBS = 3  # 3 x 11 >= 32 bits
_TAIL = 12.0  # error support |x| <= 12 sigma
# A batch this large or larger uses one gemm; smaller batches use one gemv per query (measured:
# a 2-column gemm is slower than two gemv calls with OpenBLAS here).
_GEMM_MIN_BATCH = 3


class PirError(ValueError):
    """A PIR input or message is malformed or does not fit the parameters."""


def max_plaintext_modulus(cols: int, *, delta: float = CORRECTNESS_ERROR) -> int:
    """SimplePIR's largest ``p`` for ``cols`` columns and decoding error ``delta`` (Sec. 4.2)."""
    bound = Q / (math.sqrt(2.0) * SIGMA * math.sqrt(cols) * math.sqrt(math.log(2.0 / delta)))
    return math.isqrt(int(bound))


@dataclass(frozen=True)
class Params:
    """Public parameters: matrix shape and the seed of ``A``; ``n``, ``q``, ``p`` are fixed."""

    rows: int
    cols: int
    seed: bytes

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise PirError(f"matrix must be at least 1 x 1, not {self.rows} x {self.cols}")
        if self.cols > MAX_SAMPLES:
            raise PirError(f"{self.cols} columns exceed the {MAX_SAMPLES} LWE samples analysed")
        if max_plaintext_modulus(self.cols) < P:
            raise PirError(f"{self.cols} columns are too many for p = {P} at 2^-40 error")
        if len(self.seed) != SEED_BYTES:
            raise PirError(f"seed must be {SEED_BYTES} bytes, not {len(self.seed)}")

    @property
    def query_bytes(self) -> int:
        return 4 * self.cols

    @property
    def answer_bytes(self) -> int:
        return 4 * self.rows

    @property
    def hint_bytes(self) -> int:
        return 4 * self.rows * LWE_N


def keystream(key: bytes, nbytes: int) -> U8:
    """``nbytes`` of AES-256-CTR keystream under the 32-byte ``key``, counter from 0.

    Encrypts one reused chunk of zeros into consecutive slices of ``out``: cryptography >= 51
    refuses an output buffer that overlaps its input, so the zeros cannot be ``out`` itself.
    """
    out = np.empty(nbytes + 16, dtype=np.uint8)  # update_into wants 15 bytes of slack
    zeros = np.zeros(min(nbytes, _KEYSTREAM_CHUNK), dtype=np.uint8)
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    for lo in range(0, nbytes, _KEYSTREAM_CHUNK):
        hi = min(lo + _KEYSTREAM_CHUNK, nbytes)
        encryptor.update_into(zeros[: hi - lo].data, out[lo : hi + 15].data)
    return out[:nbytes]


def matrix_a(params: Params) -> U32:
    """The public ``cols x n`` matrix ``A`` expanded from ``params.seed``."""
    raw = keystream(params.seed, 4 * params.cols * LWE_N)
    return raw.view("<u4").astype(np.uint32, copy=False).reshape(params.cols, LWE_N)


def _gaussian_cdf() -> F64:
    tail = math.ceil(_TAIL * SIGMA)
    support = np.arange(-tail, tail + 1, dtype=np.float64)
    weights = np.exp(-(support**2) / (2.0 * SIGMA**2))
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf


_CDF = _gaussian_cdf()
_CDF_OFFSET = math.ceil(_TAIL * SIGMA)


def sample_error(stream: U8) -> U32:
    """Discrete Gaussian errors mod ``q``, one per 8 bytes of ``stream`` (inverse CDF)."""
    uniform = (stream.view("<u8") >> np.uint64(11)).astype(np.float64) * 2.0**-53
    values = np.searchsorted(_CDF, uniform, side="right").astype(np.int64) - _CDF_OFFSET
    return values.astype(np.uint32)  # two's complement wrap = value mod 2^32


def mul_db(db: F64, x: U32) -> U32:
    """``db @ x mod 2^32`` exactly; ``db`` float64 entries in ``[0, p)``, ``x`` uint32.

    ``x`` is ``(cols,)`` or ``(cols, k)``; the inner dimension is chunked by :data:`INNER_CHUNK`.
    """
    cols = db.shape[1]
    if x.shape[0] != cols:
        raise PirError(f"inner dimensions differ: {cols} vs {x.shape[0]}")
    acc: U64 | None = None
    for lo in range(0, cols, INNER_CHUNK):
        hi = min(lo + INNER_CHUNK, cols)
        part = db[:, lo:hi] @ x[lo:hi].astype(np.float64)
        reduced = part.astype(np.uint64) & np.uint64(Q - 1)
        acc = reduced if acc is None else (acc + reduced) & np.uint64(Q - 1)
    assert acc is not None
    return acc.astype(np.uint32)


def mul_uniform(mat: F64, secret: U32) -> U32:
    """``mat @ secret mod 2^32`` exactly; ``mat`` float64 entries in ``[0, 2^32)``, inner <= 1024.

    ``secret`` is ``(n,)`` or ``(n, k)`` uint32; it is split into three 11-bit limbs.
    """
    if mat.shape[1] > LWE_N:
        raise PirError("inner dimension too large for the 11-bit limb split")
    s = secret.astype(np.uint64)
    limbs = [
        ((s >> np.uint64(_LIMB_BITS * i)) & np.uint64((1 << _LIMB_BITS) - 1)) for i in range(3)
    ]
    stacked = np.stack(limbs, axis=-1).astype(np.float64)  # (n, 3) or (n, k, 3)
    flat = stacked.reshape(mat.shape[1], -1)
    prod = (mat @ flat).astype(np.uint64).reshape((mat.shape[0], *stacked.shape[1:]))
    acc = np.zeros(prod.shape[:-1], dtype=np.uint64)
    for i in range(_LIMBS):
        acc += prod[..., i] << np.uint64(_LIMB_BITS * i)
    return (acc & np.uint64(Q - 1)).astype(np.uint32)


class Server:
    """Holds the database as float64 and answers queries; computes the hint once."""

    def __init__(self, params: Params, db: U8) -> None:
        if db.shape != (params.rows, params.cols) or db.dtype != np.uint8:
            raise PirError(f"database must be uint8 {params.rows} x {params.cols}, got {db.shape}")
        self.params = params
        self._db: F64 = db.astype(np.float64)
        self._hint: U32 | None = None

    def hint(self) -> U32:
        """``H = D A mod q`` (``rows x n``), computed on first use."""
        if self._hint is None:
            self._hint = mul_db(self._db, matrix_a(self.params))
        return self._hint

    def answer(self, queries: U32) -> U32:
        """Answers ``(k, rows)`` to a batch of queries ``(k, cols)``."""
        if queries.ndim != 2 or queries.shape[1] != self.params.cols:
            raise PirError(f"queries must be (k, {self.params.cols}), got {queries.shape}")
        if queries.shape[0] == 0:
            return np.zeros((0, self.params.rows), dtype=np.uint32)
        if queries.shape[0] >= _GEMM_MIN_BATCH:
            return np.ascontiguousarray(mul_db(self._db, np.ascontiguousarray(queries.T)).T)
        return np.stack([mul_db(self._db, q) for q in queries]).reshape(-1, self.params.rows)


@dataclass(frozen=True)
class QueryState:
    """Client secrets for a batch of queries (kept until the answers are decoded)."""

    secrets: U32  # (n, k)


class Client:
    """Holds ``A`` and the hint (both as float64) and builds and decodes queries."""

    def __init__(self, params: Params, hint: U32) -> None:
        if hint.shape != (params.rows, LWE_N):
            raise PirError(f"hint must be {params.rows} x {LWE_N}, got {hint.shape}")
        self.params = params
        self._a: F64 = matrix_a(params).astype(np.float64)
        self._hint: F64 = hint.astype(np.float64)

    def query(self, columns: npt.ArrayLike) -> tuple[QueryState, U32]:
        """Queries ``(k, cols)`` for the given column indices, and the state to decode them."""
        cols = np.asarray(columns, dtype=np.int64).reshape(-1)
        if cols.size and (cols.min() < 0 or cols.max() >= self.params.cols):
            raise PirError(f"column index out of range 0..{self.params.cols - 1}")
        k = cols.size
        stream = keystream(
            secrets.token_bytes(SEED_BYTES), 4 * LWE_N * k + 8 * self.params.cols * k
        )
        secret = stream[: 4 * LWE_N * k].view("<u4").astype(np.uint32).reshape(LWE_N, k)
        error = sample_error(stream[4 * LWE_N * k :]).reshape(k, self.params.cols)
        queries = mul_uniform(self._a, secret).T + error  # (k, cols), wraps mod 2^32
        queries[np.arange(k), cols] += np.uint32(DELTA)
        return QueryState(secret), np.ascontiguousarray(queries, dtype=np.uint32)

    def decode(self, state: QueryState, answers: U32) -> U8:
        """The requested columns ``(k, rows)`` as bytes, from answers ``(k, rows)``."""
        k = state.secrets.shape[1]
        if answers.shape != (k, self.params.rows):
            raise PirError(f"answers must be ({k}, {self.params.rows}), got {answers.shape}")
        noisy = answers - mul_uniform(self._hint, state.secrets).T  # wraps mod 2^32
        rounded = (noisy.astype(np.uint64) + np.uint64(DELTA // 2)) >> np.uint64(LOG_Q - PLAIN_BITS)
        return (rounded & np.uint64(P - 1)).astype(np.uint8)
