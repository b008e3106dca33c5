"""Paillier arithmetic of :mod:`.gbdt`: gradient packing, the label holder's encryption and
decryption, and the feature owners' encrypted histograms.

Key and library. The label holder's Paillier key comes from ``phe`` (python-paillier, gmpy2
backed); decryption is phe's CRT ``raw_decrypt``. Ciphertexts travel and are combined as raw
integers modulo ``n^2`` (``Enc(a) * Enc(b) = Enc(a + b)``), without phe's per-number objects.

Encryption (:meth:`LabelKey.encrypt`) is the short-randomness variant of Damgard, Jurik and
Nielsen ("A generalization of Paillier's public-key system with applications to electronic
voting", Int. J. Inf. Secur. 9(6), 2010, section 4.2): the public key carries
``h_s = h^n mod n^2`` with ``h = -y^2 mod n`` for a random unit ``y``, and a ciphertext is
``(1 + m n) h_s^x mod n^2`` with ``x`` uniform of ``RANDOMISER_BITS`` = 256 = 2 kappa bits
(kappa = 128). DJN take ``x`` of ``bitlength(n) / 2`` bits; the shorter ``x`` adds to the DCR
assumption the short-exponent assumption: ``h_s^x`` for a 256-bit ``x`` cannot be told from a
random element of the group ``<h_s>`` (of unknown order to anyone without the factorisation;
the best known generic attack, Pollard's lambda, needs ``2^128`` steps) -- the same choice as
exponents of ``2 kappa`` bits in short-exponent Diffie-Hellman. The label holder computes
``h_s^x`` modulo ``p^2`` and ``q^2`` (CRT) by fixed-base windowing (:class:`FixedBase`: 32
multiplications modulo a 2048-bit number each with a 2048-bit key), ~0.1 ms per ciphertext
instead of 2.7 ms for a full ``r^n``, and a daemon thread (:meth:`LabelKey.precompute`) keeps a
tree's worth of them ready, made while the label holder waits for the owners, so encrypting a
tree is then one multiplication per row.

Packing (:class:`GradientPacking`, FATE's gradient packing). One plaintext per row carries two
slots of ``W`` bits, ``g`` (signed) and ``h`` in fixed point with ``f`` fractional bits, as the
integer ``g + h 2^W`` (modulo ``n``: plaintexts above ``n / 2`` stand for negative numbers).
``W = f + 2 + bitlength(rows)`` bits, so a sum over all rows stays below ``2^(W - 2)`` in
absolute value in each slot: one ciphertext addition adds the gradient and the hessian of a row
at once, and the slots are read back with the borrow of a negative ``G`` undone. No count slot:
the owner of a candidate split only offers those that leave ``min_child_samples`` rows on each
side, so the label holder does not learn the candidates' row counts.

Histograms (:meth:`CipherSpace.column_sums`): a feature owner multiplies each row's ciphertext
into the cell of its bins of two columns at once (``32 x 32`` cells with 32 bins), then folds the
cells into each column's per-bin sums: one multiplication per row for two columns on large
nodes.

Compression (:meth:`CipherSpace.pack`). A feature owner returns many candidate sums; it packs
``k`` of them into one ciphertext by Horner's rule (``c <- c^(2^{2W}) * c_next``, a shift by
``2W`` bits and an addition), ``k = floor((bitlength(n) - 1) / 2W)`` (23 with a 2048-bit key and
``f = 24`` on 10^5 rows), so the label holder decrypts 23 times fewer ciphertexts; items are
signed, read back from the lowest with the borrows undone. Each packed
ciphertext is then re-randomised with a fresh encryption of zero, ``h_s^z`` with ``z`` uniform of
``bitlength(n) + 128`` bits (fixed-base windowing modulo ``n^2``): the key holder can recover the
randomness of anything it decrypts, and without a fresh factor that randomness is the product of
the rows' own (known to the label holder) -- it would tell which rows were summed. The rows'
randomness lies in ``<h_s>`` and ``h_s^z`` is within ``2^-128`` of uniform on ``<h_s>`` (its
order is below ``n``), so the product is too, whichever rows were summed: a full-length ``z``
because the label holder knows the group's order (a short one would fall to Pohlig-Hellman on
the smooth part of ``p - 1`` and ``q - 1`` plus Pollard's lambda).
"""

from __future__ import annotations

import secrets
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import gmpy2  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
from phe import paillier  # type: ignore[import-untyped]

F64 = npt.NDArray[np.float64]
Cipher: TypeAlias = Any  # a gmpy2.mpz below n^2 (gmpy2 ships no type information)

MIN_KEY_BITS: Final = 1024
RANDOMISER_BITS: Final = 256
STATISTICAL_BITS: Final = 128
_ONE: Final = gmpy2.mpz(1)
_PAIR_ROWS_PER_CELL: Final = 2  # sum two columns jointly when a node has this many rows per cell


class PaillierError(ValueError):
    """A key or a ciphertext message that cannot be used."""


@dataclass(frozen=True)
class GradientPacking:
    """The layout of one row's ``(g, h)`` in a Paillier plaintext (see module doc)."""

    frac_bits: int
    slot_bits: int

    @classmethod
    def for_rows(cls, rows: int, frac_bits: int) -> GradientPacking:
        if not 8 <= frac_bits <= 48:
            raise ValueError("frac_bits must be in 8..48")
        return cls(frac_bits, frac_bits + 2 + rows.bit_length())

    @property
    def item_bits(self) -> int:
        return 2 * self.slot_bits

    def encode(self, grad: F64, hess: F64) -> list[int]:
        """``g + h 2^W`` per row (``g`` signed), in fixed point."""
        if np.any(np.abs(grad) > 1.0) or np.any((hess < 0.0) | (hess > 1.0)):
            raise ValueError("gradients must lie in [-1, 1] and hessians in [0, 1]")
        scale = float(1 << self.frac_bits)
        scaled_grad = np.rint(grad * scale).astype(np.int64).tolist()
        scaled_hess = np.rint(hess * scale).astype(np.int64).tolist()
        width = self.slot_bits
        return [g + (h << width) for g, h in zip(scaled_grad, scaled_hess, strict=True)]

    def decode(self, sums: Sequence[int]) -> tuple[F64, F64]:
        """``(G, H)`` from (signed) plaintext sums of encoded rows."""
        width, mask, half = self.slot_bits, (1 << self.slot_bits) - 1, 1 << (self.slot_bits - 1)
        grads, hesses = [], []
        for value in sums:
            grad = value & mask
            grad -= (grad >= half) << width
            grads.append(float(grad))
            hesses.append(float((value - grad) >> width))
        scale = float(1 << self.frac_bits)
        return np.array(grads) / scale, np.array(hesses) / scale


class FixedBase:
    """``base^x mod modulus`` for ``x`` below ``2^(8 digits)`` from a table of
    ``base^(d 256^i)`` for every byte value ``d`` and position ``i`` (fixed-base windowing,
    Menezes, van Oorschot and Vanstone, Handbook of Applied Cryptography, 14.6.3): one modular
    multiplication per exponent byte, ``256 * digits`` numbers in the table."""

    def __init__(self, base: int | Cipher, modulus: int | Cipher, digits: int) -> None:
        self.modulus = gmpy2.mpz(modulus)
        self.digits = digits
        rows: list[list[Cipher]] = []
        power = gmpy2.mpz(base) % self.modulus
        for _ in range(digits):
            row = [_ONE, power]
            for _ in range(254):
                row.append(row[-1] * power % self.modulus)
            rows.append(row)
            power = row[-1] * power % self.modulus
        self._rows = rows

    def power(self, exponent: bytes) -> Cipher:
        """``base^x`` for the little-endian ``exponent`` bytes of ``x``."""
        if len(exponent) != self.digits:
            raise ValueError(f"the exponent must have {self.digits} bytes")
        modulus, total = self.modulus, _ONE
        for row, digit in zip(self._rows, exponent, strict=True):
            total = total * row[digit] % modulus
        return total

    def random_powers(self, count: int) -> list[Cipher]:
        """``count`` powers ``base^x``, each ``x`` uniform below ``2^(8 digits)``."""
        size = self.digits
        exponents = secrets.token_bytes(size * count)
        return [self.power(exponents[k * size : (k + 1) * size]) for k in range(count)]


class _Randomisers:
    """Randomisers made ahead of use by a daemon thread, up to ``target`` of them, only while
    their user waits for a peer (:meth:`idle`): the work fills idle time and never competes
    with the user's own for the interpreter."""

    def __init__(self, make: Callable[[int], list[Cipher]], target: int, batch: int) -> None:
        self._make, self._target, self._batch = make, target, batch
        self._ready: deque[Cipher] = deque()
        self._state = threading.Condition()
        self._idle = self._stopped = False
        self._thread = threading.Thread(target=self._fill, name="paillier-randomisers", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        while True:
            with self._state:
                self._state.wait_for(
                    lambda: self._stopped or (self._idle and len(self._ready) < self._target)
                )
                if self._stopped:
                    return
            self._ready.extend(self._make(self._batch))

    @contextmanager
    def idle(self) -> Iterator[None]:
        with self._state:
            self._idle = True
            self._state.notify()
        try:
            yield
        finally:
            with self._state:
                self._idle = False

    def take(self, count: int) -> list[Cipher]:
        """``count`` randomisers: the ready ones first, the rest made now."""
        out: list[Cipher] = []
        while len(out) < count:
            try:
                out.append(self._ready.popleft())
            except IndexError:
                out += self._make(count - len(out))
        return out

    def close(self) -> None:
        with self._state:
            self._stopped = True
            self._state.notify()
        self._thread.join()


class _MadeAhead(ABC):
    """A party that may make its randomisers ahead of use (:meth:`_make`): :meth:`precompute`
    starts a daemon thread that makes them while in :meth:`idle`, :meth:`close` stops it."""

    _AHEAD_BATCH = 16
    _ahead: _Randomisers | None = None

    @abstractmethod
    def _make(self, count: int) -> list[Cipher]:
        """``count`` new randomisers of the kind this party uses."""

    def _take(self, count: int) -> list[Cipher]:
        return self._make(count) if self._ahead is None else self._ahead.take(count)

    def precompute(self, count: int) -> None:
        """Keep up to ``count`` ready, made in a daemon thread while in :meth:`idle`, until
        :meth:`close`."""
        if self._ahead is None:
            self._ahead = _Randomisers(self._make, count, batch=self._AHEAD_BATCH)

    @contextmanager
    def idle(self) -> Iterator[None]:
        """A block in which the caller waits for a peer (what it needs is made meanwhile)."""
        if self._ahead is None:
            yield
        else:
            with self._ahead.idle():
                yield

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None


class LabelKey(_MadeAhead):
    """The label holder's key pair; encrypts with the factorisation (see module doc)."""

    def __init__(self, key_bits: int) -> None:
        if key_bits < MIN_KEY_BITS:
            raise ValueError(f"Paillier keys below {MIN_KEY_BITS} bits are refused")
        public, self._private = paillier.generate_paillier_keypair(n_length=key_bits)
        n = gmpy2.mpz(public.n)
        y = _ONE
        while True:
            y = gmpy2.mpz(secrets.randbelow(int(n) - 2) + 2)
            if gmpy2.gcd(y, n) == 1:
                break
        h_s = gmpy2.powmod(n - y * y % n, n, n * n)
        self.n = n
        self.space = CipherSpace(n, h_s)
        p, q = gmpy2.mpz(self._private.p), gmpy2.mpz(self._private.q)
        self._p2, self._q2 = p * p, q * q
        self._q2_inverse = gmpy2.invert(self._q2, self._p2)
        digits = RANDOMISER_BITS // 8
        self._tables = (FixedBase(h_s, self._p2, digits), FixedBase(h_s, self._q2, digits))

    def randomiser(self, exponent: bytes) -> Cipher:
        """``h_s^x mod n^2`` (CRT) for the little-endian ``exponent`` bytes of ``x``."""
        r_p = self._tables[0].power(exponent)
        r_q = self._tables[1].power(exponent)
        return r_q + self._q2 * ((r_p - r_q) * self._q2_inverse % self._p2)

    def randomisers(self, count: int) -> list[Cipher]:
        """``count`` fresh ``h_s^x`` with ``x`` uniform of ``RANDOMISER_BITS`` bits."""
        size = RANDOMISER_BITS // 8
        exponents = secrets.token_bytes(size * count)
        return [self.randomiser(exponents[k * size : (k + 1) * size]) for k in range(count)]

    _AHEAD_BATCH = 256
    _make = randomisers  # made ahead: the randomisers of the next encryptions

    def encrypt(self, plaintexts: Sequence[int]) -> list[Cipher]:
        n, n2 = self.n, self.space.n2
        randomisers = self._take(len(plaintexts))
        # (1 + m n) r = r + n (m r mod n) modulo n^2: cheaper than the product
        return [(r + n * (m * r % n)) % n2 for m, r in zip(plaintexts, randomisers, strict=True)]

    def decrypt(self, ciphers: Sequence[Cipher]) -> list[int]:
        return [int(self._private.raw_decrypt(int(c))) for c in ciphers]


class CipherSpace(_MadeAhead):
    """Public-key arithmetic on ciphertexts modulo ``n^2`` (what a feature owner can do)."""

    def __init__(self, n: int | Cipher, h_s: int | Cipher) -> None:
        n, h_s = gmpy2.mpz(n), gmpy2.mpz(h_s)
        if n.bit_length() < MIN_KEY_BITS or n % 2 == 0:
            raise PaillierError(f"not a Paillier modulus of at least {MIN_KEY_BITS} bits")
        self.n = n
        self.n2 = n * n
        if not 1 < h_s < self.n2 or gmpy2.gcd(h_s, n) != 1:
            raise PaillierError("h_s is not a unit modulo n^2")
        self.h_s = h_s
        self.width = (int(self.n2).bit_length() + 7) // 8
        self._table: FixedBase | None = None

    def items_per_cipher(self, item_bits: int) -> int:
        per = (int(self.n).bit_length() - 1) // item_bits
        if per < 1:
            raise PaillierError("the key is too small for one packed item")
        return per

    def column_sums(
        self, ciphers: Sequence[Cipher], bins: npt.NDArray[np.uint8], widths: Sequence[int]
    ) -> list[list[Cipher]]:
        """``Enc(sum of the rows in bin b)`` for ``b < widths[j]`` of every column ``j``;
        ``bins[i, j]`` is row ``i``'s bin of column ``j``. Two columns share one pass over the
        rows (a cell per pair of bins) when the node has enough rows per cell."""
        out: list[list[Cipher]] = []
        j = 0
        while j < len(widths):
            pair = j + 1 < len(widths)
            if pair and len(ciphers) >= _PAIR_ROWS_PER_CELL * widths[j] * widths[j + 1]:
                cells = bins[:, j].astype(np.intp) * widths[j + 1] + bins[:, j + 1]
                sums = self._cell_sums(ciphers, cells.tolist(), widths[j] * widths[j + 1])
                out += self._fold(sums, widths[j], widths[j + 1])
                j += 2
            else:
                sums = self._cell_sums(ciphers, bins[:, j].tolist(), widths[j])
                out.append([_ONE if total is None else total for total in sums])
                j += 1
        return out

    def _cell_sums(self, ciphers: Sequence[Cipher], cells: list[int], size: int) -> list[Cipher]:
        """The product of the ciphertexts in each cell, ``None`` for an empty cell."""
        n2 = self.n2
        sums: list[Cipher] = [None] * size
        for cipher, cell in zip(ciphers, cells, strict=True):
            total = sums[cell]
            sums[cell] = cipher if total is None else total * cipher % n2
        return sums

    def _fold(self, cells: list[Cipher], rows: int, columns: int) -> list[list[Cipher]]:
        """The row and column products of a ``rows x columns`` table of ciphertexts."""
        n2 = self.n2
        first, second = [_ONE] * rows, [_ONE] * columns
        for index, cipher in enumerate(cells):
            if cipher is not None:
                a, b = divmod(index, columns)
                first[a] = first[a] * cipher % n2
                second[b] = second[b] * cipher % n2
        return [first, second]

    def subtract(self, minuend: Sequence[Cipher], subtrahend: Sequence[Cipher]) -> list[Cipher]:
        n2 = self.n2
        return [a * gmpy2.invert(b, n2) % n2 for a, b in zip(minuend, subtrahend, strict=True)]

    def prefix_sums(self, sums: Sequence[Cipher]) -> list[Cipher]:
        """``Enc(sum of bins 0..b)`` for every ``b`` but the last (the candidate left sides)."""
        n2, total, out = self.n2, _ONE, []
        for cipher in sums[:-1]:
            total = total * cipher % n2
            out.append(total)
        return out

    def zeros(self, count: int) -> list[Cipher]:
        """Fresh encryptions of zero, ``h_s^z`` with ``z`` of ``bitlength(n) + 128`` bits
        (each re-randomises a ciphertext it multiplies; see the module doc)."""
        return self._take(count)

    def _make(self, count: int) -> list[Cipher]:  # made ahead: the encryptions of zero
        if self._table is None:
            digits = -(-(int(self.n).bit_length() + STATISTICAL_BITS) // 8)
            self._table = FixedBase(self.h_s, self.n2, digits)
        return self._table.random_powers(count)

    def pack(self, items: Sequence[Cipher], item_bits: int) -> list[Cipher]:
        """Pack ``items`` (each below ``2^item_bits``) into re-randomised ciphertexts, item 0 in
        the lowest bits; :meth:`unpack` on the decrypted values gives them back."""
        per, n2 = self.items_per_cipher(item_bits), self.n2
        shift = gmpy2.mpz(1) << item_bits
        starts = range(0, len(items), per)
        packed = []
        for start, zero in zip(starts, self.zeros(len(starts)), strict=True):
            chunk = items[start : start + per]
            total = chunk[-1]
            for cipher in reversed(chunk[:-1]):
                total = gmpy2.powmod(total, shift, n2) * cipher % n2
            packed.append(total * zero % n2)
        return packed

    def unpack(self, plaintexts: Sequence[int], item_bits: int, count: int) -> list[int]:
        """The signed items (each of absolute value below ``2^(item_bits - 1)``) of decrypted
        :meth:`pack` values (plaintexts above ``n / 2`` stand for negative numbers)."""
        per, mask = self.items_per_cipher(item_bits), (1 << item_bits) - 1
        half, n = 1 << (item_bits - 1), int(self.n)
        if len(plaintexts) != -(-count // per):
            raise PaillierError(f"{len(plaintexts)} packed values cannot hold {count} items")
        out = []
        for plaintext in plaintexts:
            value = plaintext - n if plaintext > n // 2 else plaintext
            for _ in range(per):
                item = value & mask
                item -= (item >= half) << item_bits
                out.append(item)
                value = (value - item) >> item_bits
        return out[:count]

    def to_bytes(self, ciphers: Sequence[Cipher]) -> bytes:
        width = self.width
        return b"".join(int(c).to_bytes(width, "big") for c in ciphers)

    def from_bytes(self, payload: bytes | memoryview, count: int) -> list[Cipher]:
        width = self.width
        if len(payload) != count * width:
            raise PaillierError(f"expected {count} ciphertexts of {width} bytes")
        ciphers = [
            gmpy2.mpz(int.from_bytes(payload[k * width : (k + 1) * width], "big"))
            for k in range(count)
        ]
        if any(not 0 < c < self.n2 for c in ciphers):
            raise PaillierError("a ciphertext is out of range")
        return ciphers
