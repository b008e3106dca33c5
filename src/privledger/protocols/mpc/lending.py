"""Multi-lending check: one customer's total loans across the other banks, or only a bit.

Roles: the *requesting* bank holds a customer id (and, for the bit, a limit); every other
party is a *bank* holding a :class:`LoanBook` (customer id -> total outstanding amount, in
integer minor units). The requester learns either the total of the customer's amounts at the
other banks (``mode="total"``) or only whether that total exceeds its limit
(``mode="exceeds"``: ``total > limit``; equal is *not* exceeding).

Protocol (mesh and trusted dealer of :mod:`.sharing`):

1. Private lookup, requester with each bank ``j`` as a two-party group, all banks in parallel.
   Customer ids are hashed to 64-bit keys, ``k = SHA-256(DST || id)[:8]``; the bank's keys are
   hashed once when the book is built. The requester's key and the bank's ``n_j`` keys form XOR
   shares of ``k ^ key_i``; a packed zero test (:func:`.compare.equal_shared_xor`) yields
   XOR-shared match bits ``e_i = e_i^R ^ e_i^B``; then, with ``e_i = e_i^R + e_i^B - 2 e_i^R
   e_i^B``, the amount ``sum_i e_i a_i`` is the bank's local ``sum_i e_i^B a_i`` plus one
   dealer-assisted inner product (:func:`.sharing.inner_product`, Du and Atallah) of the
   requester's ``e^R`` with the bank's ``(1 - 2 e^B) a``. The
   result is the customer's amount at bank ``j`` (zero if the bank has no such customer) as
   additive shares between the requester and bank ``j``.
   This is a linear scan inside MPC -- the bank touches every record, as any PIR server must --
   instead of an OPRF-keyed lookup: the requester never learns an encrypted table, so it does
   not even learn whether the customer is at bank ``j``.
2. All parties re-share their shares to everybody (:func:`.sharing.share_sum`), so each party
   holds a share of the *total* and no bank's own amount is ever held by just two parties.
3. ``total``: the shares are opened to the requester only. ``exceeds``: a secure comparison
   with the limit, which only the requester inputs (it subtracts it from its own share), and
   the bit is opened to the requester only.

Leakage (semi-honest; trusted dealer that colludes with nobody):

- banks: nothing about the customer (their view is dealer-masked), nor the limit, nor the
  result; they learn that a check ran and the mode.
- requester: the total, or only the bit; plus each bank's table size ``n_j`` (pad the book to
  a public size if that matters). With exactly one other bank the total is that bank's amount.
- the customer key is 64 bits: a bank record matches a different customer with probability
  ``n_j / 2^64`` (~5e-15 for 10^5 records).
- anybody colluding with the dealer sees everything; customer ids have low entropy, so that
  collusion would reveal the customer -- the dealer must be trusted.

Validation: amounts must be non-negative integers (``bool``, floats and negatives raise
ValueError), per customer and bank at most :data:`MAX_AMOUNT` (2^48 - 1), the limit a
non-negative integer up to 2^62.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from privledger.protocols.mpc.compare import equal_shared_xor, greater_than, reveal_bits
from privledger.protocols.mpc.correlations import Group
from privledger.protocols.mpc.ring import U64, const
from privledger.protocols.mpc.sharing import (
    MpcError,
    Party,
    agree,
    inner_product,
    open_to,
    session,
    share_sum,
)

logger = logging.getLogger(__name__)

Mode = Literal["total", "exceeds"]
CustomerId = str | bytes

PROTOCOL: Final = "privledger/mpc-multi-lending"
VERSION: Final = 1
MAX_AMOUNT: Final = (1 << 48) - 1
MAX_LIMIT: Final = 1 << 62
MAX_BOOK: Final = 1 << 24
_KEY_DST: Final = b"privledger/mpc-lending/v1/customer\x00"


def customer_key(customer_id: CustomerId) -> int:
    """The 64-bit key of a customer id (text is UTF-8 encoded)."""
    raw = customer_id.encode() if isinstance(customer_id, str) else customer_id
    if not isinstance(raw, bytes) or not raw:
        raise ValueError("a customer id must be non-empty text or bytes")
    return int.from_bytes(hashlib.sha256(_KEY_DST + raw).digest()[:8], "little")


@dataclass(frozen=True)
class LoanBook:
    """A bank's table, hashed and validated once: unique 64-bit keys and their amounts."""

    keys: U64 = field(repr=False)
    amounts: U64 = field(repr=False)

    @classmethod
    def from_records(
        cls, records: Mapping[CustomerId, int] | Iterable[tuple[CustomerId, int]]
    ) -> LoanBook:
        """From (customer id, amount) pairs; several loans of one customer are added up."""
        items = records.items() if isinstance(records, Mapping) else records
        totals: dict[int, int] = {}
        for customer, amount in items:
            _check_amount(amount)
            key = customer_key(customer)
            totals[key] = totals.get(key, 0) + int(amount)
        return cls._build(list(totals), list(totals.values()))

    @classmethod
    def from_arrays(cls, keys: npt.ArrayLike, amounts: npt.ArrayLike) -> LoanBook:
        """From precomputed :func:`customer_key` values and integer amounts (vectorised)."""
        key_array = np.asarray(keys)
        amount_array = np.asarray(amounts)
        if key_array.dtype != np.uint64 or key_array.ndim != 1:
            raise ValueError("keys must be a 1-D uint64 array of customer_key values")
        if amount_array.dtype.kind not in "iu" or amount_array.shape != key_array.shape:
            raise ValueError("amounts must be integers, one per key")
        if amount_array.size and (amount_array.min() < 0 or amount_array.max() > MAX_AMOUNT):
            raise ValueError(f"amounts must be in 0..{MAX_AMOUNT}")
        unique, inverse = np.unique(key_array, return_inverse=True)
        summed = np.zeros(unique.size, dtype=np.int64)
        np.add.at(summed, inverse, amount_array.astype(np.int64))
        return cls._build(unique.tolist(), summed.tolist())

    @classmethod
    def _build(cls, keys: list[int], amounts: list[int]) -> LoanBook:
        if len(keys) > MAX_BOOK:
            raise ValueError(f"a book holds at most {MAX_BOOK} customers")
        if any(a > MAX_AMOUNT for a in amounts):
            raise ValueError(f"a customer's total at one bank exceeds {MAX_AMOUNT}")
        return cls(np.asarray(keys, dtype=np.uint64), np.asarray(amounts, dtype=np.uint64))

    @property
    def size(self) -> int:
        return int(self.keys.size)


@dataclass(frozen=True)
class LendingResult:
    """The requester's output: ``total`` (mode "total") or ``exceeds`` (mode "exceeds")."""

    mode: Mode
    banks: int
    total: int | None = None
    exceeds: bool | None = None


def multi_lending_check(
    party: Party,
    *,
    requester: int,
    mode: Mode,
    customer_id: CustomerId | None = None,
    limit: int | None = None,
    book: LoanBook | None = None,
) -> LendingResult | None:
    """Run the check; the requester passes ``customer_id`` (and ``limit`` for "exceeds"),
    every other party its ``book``. The requester gets a :class:`LendingResult`, others None.
    """
    group = party.parties
    if requester not in group:
        raise ValueError(f"requester {requester} is not a party of the mesh")
    if mode not in ("total", "exceeds"):
        raise ValueError(f"mode must be 'total' or 'exceeds', not {mode!r}")
    is_requester = party.index == requester
    key = _check_inputs(is_requester, mode, customer_id, limit, book)
    banks = [j for j in group if j != requester]
    with session(party, "multi-lending"):
        params = {"protocol": PROTOCOL, "version": VERSION, "mode": mode, "requester": requester}
        agree(party, group, params)
        if is_requester:
            with ThreadPoolExecutor(len(banks), thread_name_prefix="mpc-lending") as pool:
                parts = list(pool.map(lambda j: _lookup_requester(party, j, key), banks))
            mine = np.asarray([sum(int(p) for p in parts) % (1 << 64)], dtype=np.uint64)
        else:
            assert book is not None
            mine = _lookup_bank(party, requester, book)
        total = share_sum(party, group, mine)
        if mode == "total":
            opened = open_to(party, group, total, requester)
            if opened is None:
                return None
            return LendingResult(mode, len(banks), total=int(opened[0]))
        threshold = [limit] if is_requester and limit is not None else None
        bit = greater_than(party, group, total, threshold, holder=requester)
        revealed = reveal_bits(party, group, bit, requester)
    if revealed is None:
        return None
    return LendingResult(mode, len(banks), exceeds=bool(revealed[0]))


def _check_inputs(
    is_requester: bool,
    mode: Mode,
    customer_id: CustomerId | None,
    limit: int | None,
    book: LoanBook | None,
) -> int:
    if not is_requester:
        if book is None or customer_id is not None or limit is not None:
            raise ValueError("a bank passes its book only")
        return 0
    if book is not None or customer_id is None:
        raise ValueError("the requester passes the customer id (and the limit), not a book")
    if mode == "exceeds":
        _check_amount(limit, what="limit", maximum=MAX_LIMIT)
    elif limit is not None:
        raise ValueError("a limit is only used with mode='exceeds'")
    return customer_key(customer_id)


def _check_amount(value: object, *, what: str = "amount", maximum: int = MAX_AMOUNT) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{what} must be an integer (minor units), not {value!r}")
    if not 0 <= int(value) <= maximum:
        raise ValueError(f"{what} must be in 0..{maximum}, not {value}")


def _pair(a: int, b: int) -> Group:
    return (min(a, b), max(a, b))


def _lookup_requester(party: Party, bank: int, key: int) -> int:
    """The requester's additive share of the customer's amount at ``bank``."""
    group = _pair(party.index, bank)
    header = party.recv(bank)
    if len(header) != 8 or int.from_bytes(header, "big") > MAX_BOOK:
        raise MpcError(f"bank {bank} sent a malformed table size")
    size = int.from_bytes(header, "big")
    match = equal_shared_xor(party, group, np.full(size, key, dtype=np.uint64))
    return int(inner_product(party, group, match, left=party.index)[0])


def _lookup_bank(party: Party, requester: int, book: LoanBook) -> U64:
    """The bank's additive share of the customer's amount in its ``book``."""
    group = _pair(party.index, requester)
    party.send(requester, book.size.to_bytes(8, "big"))
    match = equal_shared_xor(party, group, book.keys)
    flipped = book.amounts - const(2) * match * book.amounts  # (1 - 2 e^B) a
    share = inner_product(party, group, flipped, left=requester)
    return share + np.sum(match * book.amounts, dtype=np.uint64, keepdims=True)
