"""Additive secret sharing over Z_2^64 for N parties, with a trusted dealer for correlations.

The ring, fixed-point encoding and randomness are in :mod:`.ring`, the dealer in :mod:`.dealer`.

Parties and channels. A :class:`Party` knows its index and a :class:`Channel` to every peer
(the mesh is complete: one two-party channel per pair). A *group* is a sorted tuple of party
indices that run a sub-protocol together; its first member is the group's *lead*, which adds
public constants and talks to the dealer. Messages between two parties are turn-based (the lower
index sends first in every exchange), so each channel's transcript hash is equal on both ends.
:func:`local_mesh` builds an in-memory mesh (``channel_pair``) for tests and benchmarks.

Security model: semi-honest parties, an honest majority is *not* needed (any N-1 colluding
parties learn nothing about the last party's input beyond the output) provided the dealer does
not collude. Every opened value is masked by a uniformly random dealer value (truncation
included, see :func:`truncate`), so the transcript reveals nothing but the declared outputs.

Dropout. Every receive waits at most ``Party.timeout`` seconds; a peer that is silent, or that
leaves without a word (its channel closes with no abort notice: its node gave up on the task),
raises :class:`PeerSilent`, naming the peer.
Protocol entry points wrap their work in :func:`session`: on any failure it sends every peer and
the dealer an *abort notice* -- a message that starts with a fixed 24-byte marker (a protocol
message, made of uniform words, digests and counts, starts so with probability 2^-192) and
carries the party, whether the cause was a silent or unreachable peer, and a short reason -- and
closes all of this party's channels. The others then fail fast with the same kind of error -- a
:class:`PeerSilent` (which a node records as ``PEER_UNREACHABLE``) or a :class:`PartyDropout`
naming the reason -- instead of waiting for their own timeouts. The dealer stops serving
everyone on a notice or a broken link, passes the notice on to every party, and
:meth:`Dealer.join` raises it, so a dealer never reports success for an aborted session. Results
are reconstructed only after every share has arrived, so nothing partial leaks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

import numpy as np

from privledger.protocols.channel import Channel, ChannelClosed, ChannelError, ChannelTimeout
from privledger.protocols.mpc.correlations import (
    CorrelationOp,
    Group,
    correlation_nonce,
    cut,
    layout,
    lead_corrections,
)
from privledger.protocols.mpc.ring import (
    RING_BITS,
    SEED_BYTES,
    U64,
    const,
    prg_words,
    split,
)

logger = logging.getLogger(__name__)

TRUNC_MAX_BOUND_BITS: Final = 62  # truncate needs x + 2^bound < 2^63
_ABORT: Final = b"privledger/mpc/abort/v1\x00"  # 24 bytes; see "Dropout" above


class MpcError(Exception):
    """The parties disagree on a protocol's parameters, or a message is malformed."""


class PartyDropout(ChannelError):
    """A peer (or the dealer) did not answer or closed its channel: the task fails."""


class PeerSilent(PartyDropout, ChannelTimeout):
    """A peer (or the dealer) did not answer in time or could not be reached -- noticed here or
    reported by the party that noticed it first. A :class:`ChannelTimeout`, so a node records it
    as an unreachable peer."""


# --- parties ------------------------------------------------------------------------------


class Party:
    """One participant: its index, a channel to each peer and (optionally) to the dealer.

    ``timeout`` bounds every wait for a message, in seconds (``None`` waits forever). A party
    may run sub-protocols of *different* groups from several threads at once (each group uses
    its own channels; dealer requests are serialised); one group must not be used by two
    threads at the same time.
    """

    def __init__(
        self,
        index: int,
        peers: Mapping[int, Channel],
        *,
        dealer: Channel | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        if index < 0 or index in peers:
            raise ValueError(f"bad party index {index} for peers {sorted(peers)}")
        self.index = index
        self.timeout = timeout
        self._peers = dict(peers)
        self._dealer = dealer
        self._dealer_lock = threading.Lock()
        self._dealer_failure: Exception | None = None  # once the dealer link failed, it stays so
        self._seed: bytes | None = None
        self._labels: dict[tuple[str, Group], int] = {}
        self._labels_lock = threading.Lock()

    @property
    def parties(self) -> Group:
        """Every party index in the mesh, sorted."""
        return tuple(sorted([self.index, *self._peers]))

    def send(self, peer: int, payload: bytes) -> None:
        try:
            self._peers[peer].send(payload)
        except ChannelClosed as exc:
            raise PartyDropout(f"party {self.index}: channel to party {peer} is closed") from exc

    def recv(self, peer: int) -> bytes:
        try:
            payload = self._peers[peer].recv(self.timeout)
        except ChannelTimeout as exc:
            raise PeerSilent(
                f"party {self.index}: party {peer} did not answer within {self.timeout} s"
            ) from exc
        except ChannelClosed as exc:  # no abort notice first: its node gave up on the task
            raise PeerSilent(
                f"party {self.index}: party {peer} left without a word (closed its channel)"
            ) from exc
        except ChannelError as exc:
            raise PartyDropout(
                f"party {self.index}: party {peer} dropped out ({type(exc).__name__}: {exc})"
            ) from exc
        raise_if_abort(payload, f"party {self.index}: party {peer}")
        return payload

    def delivering(self, peer: int) -> None:
        """Say that what this party sends ``peer`` from now on gives it its output, in whole or
        in part (:meth:`.Channel.delivering`)."""
        self._peers[peer].delivering()

    def send_words(self, peer: int, values: U64) -> None:
        self.send(peer, values.astype("<u8", copy=False).tobytes())

    def recv_words(self, peer: int, count: int) -> U64:
        payload = self.recv(peer)
        if len(payload) != 8 * count:
            raise MpcError(f"party {peer} sent {len(payload)} bytes, expected {count} words")
        return np.frombuffer(payload, dtype="<u8").astype(np.uint64, copy=False)

    def exchange(self, group: Group, outgoing: Mapping[int, bytes]) -> dict[int, bytes]:
        """Send ``outgoing[j]`` to and receive one message from every other member ``j``.

        Turn-based per channel: the lower index sends first. Sends never block, so sending to
        the higher members, then answering the lower ones, cannot deadlock.
        """
        lower = [j for j in group if j < self.index]
        higher = [j for j in group if j > self.index]
        received: dict[int, bytes] = {}
        for j in higher:
            self.send(j, outgoing[j])
        for j in lower:
            received[j] = self.recv(j)
        for j in lower:
            self.send(j, outgoing[j])
        for j in higher:
            received[j] = self.recv(j)
        return received

    def correlation(
        self, op: CorrelationOp, group: Group, count: int, *, frac_bits: int = 0
    ) -> list[U64]:
        """This party's shares of ``count`` dealer correlations of kind ``op`` for ``group``."""
        if self.index not in group or list(group) != sorted(set(group)):
            raise ValueError(f"party {self.index} is not in the sorted group {group}")
        if op == "inner" and len(group) != 2:
            raise ValueError("inner-product correlations are for two parties")
        with self._labels_lock:
            label = self._labels.get((op, group), 0)
            self._labels[(op, group)] = label + 1
        seed = self._dealer_seed()
        is_lead = self.index == group[0]
        sizes = layout(op, count)
        own = sizes[: len(sizes) - lead_corrections(op)] if is_lead else sizes
        nonce = correlation_nonce(op, group, label, self.index, frac_bits)
        shares = cut(prg_words(seed, nonce, sum(own)), own)
        if is_lead:
            fixed = sizes[len(own) :]
            request = {"op": op, "group": list(group), "label": label, "n": count, "f": frac_bits}
            correction = self._ask_dealer(json.dumps(request).encode(), sum(fixed))
            shares += cut(correction, fixed)
        return shares

    def abort(self, cause: BaseException | None = None) -> None:
        """Send every peer and the dealer an abort notice saying why (best effort), then close
        every channel: the others fail fast with :class:`PeerSilent` when ``cause`` was a silent
        or unreachable peer, else with :class:`PartyDropout`."""
        notice = abort_notice(self.index, cause)
        channels = [*self._peers.values(), *([self._dealer] if self._dealer else [])]
        for channel in channels:
            try:
                channel.send(notice)
            except ChannelError as exc:  # that peer is gone or its link broken: nothing to tell
                logger.debug("abort notice of party %d not delivered: %s", self.index, exc)
            channel.close()

    def _dealer_seed(self) -> bytes:
        with self._dealer_lock:
            if self._seed is None:
                if self._dealer is None:
                    raise MpcError(f"party {self.index} has no dealer channel")
                seed = self._dealer_recv()
                if len(seed) != SEED_BYTES:
                    raise MpcError("dealer sent a malformed seed")
                self._seed = seed
            return self._seed

    def _ask_dealer(self, request: bytes, count: int) -> U64:
        with self._dealer_lock:
            assert self._dealer is not None
            self._check_dealer()
            try:
                self._dealer.send(request)
            except ChannelClosed as exc:
                raise PartyDropout(f"party {self.index}: the dealer channel is closed") from exc
            payload = self._dealer_recv()
        if len(payload) != 8 * count:
            raise MpcError(f"dealer sent {len(payload)} bytes, expected {count} words")
        return np.frombuffer(payload, dtype="<u8").astype(np.uint64, copy=False)

    def _dealer_recv(self) -> bytes:
        """The dealer's next message (with ``_dealer_lock`` held). After a failure every later
        call raises it again: an answer left unread behind an abort notice must never be taken
        for the answer to another request (this party's threads share the dealer channel)."""
        self._check_dealer()
        try:
            return self._dealer_message()
        except (MpcError, ChannelError) as exc:
            self._dealer_failure = exc
            raise

    def _check_dealer(self) -> None:
        if self._dealer_failure is not None:
            raise type(self._dealer_failure)(str(self._dealer_failure))

    def _dealer_message(self) -> bytes:
        assert self._dealer is not None
        try:
            payload = self._dealer.recv(self.timeout)
        except ChannelTimeout as exc:
            raise PeerSilent(
                f"party {self.index}: the dealer did not answer within {self.timeout} s"
            ) from exc
        except ChannelClosed as exc:
            raise PeerSilent(f"party {self.index}: the dealer left without a word") from exc
        except ChannelError as exc:
            raise PartyDropout(f"party {self.index}: the dealer dropped out ({exc})") from exc
        raise_if_abort(payload, f"party {self.index}: the dealer")
        return payload


def is_silence(cause: BaseException | None) -> bool:
    """Whether a failure means a peer is silent or unreachable (rather than that it quit): a
    timeout, or a broken link other than a peer's own close or abort."""
    if isinstance(cause, ChannelTimeout):
        return True
    return isinstance(cause, ChannelError) and not isinstance(cause, ChannelClosed | PartyDropout)


def abort_notice(index: int, cause: BaseException | None) -> bytes:
    reason = "aborted" if cause is None else f"{type(cause).__name__}: {cause}"
    fields = {"party": index, "silent": is_silence(cause), "reason": reason[:300]}
    return _ABORT + json.dumps(fields, sort_keys=True).encode()


def raise_if_abort(payload: bytes, who: str) -> None:
    """Raise the error an abort notice stands for (a protocol message never starts with the
    marker: shares are uniform words, the rest fixed-size digests and counts)."""
    if not payload.startswith(_ABORT):
        return
    try:
        fields = json.loads(payload[len(_ABORT) :])
        silent, reason = bool(fields["silent"]), str(fields["reason"])
    except (ValueError, KeyError, TypeError):
        silent, reason = False, "a malformed abort notice"
    if silent:
        raise PeerSilent(f"{who} aborted because a peer is unreachable ({reason})")
    raise PartyDropout(f"{who} aborted ({reason})")


@contextmanager
def session(party: Party, name: str) -> Iterator[None]:
    """Run one protocol: on any failure close this party's channels and re-raise."""
    try:
        yield
    except BaseException as exc:
        logger.warning("mpc %s aborted at party %d: %s", name, party.index, exc)
        party.abort(exc)
        raise


def agree(party: Party, group: Group, params: Mapping[str, object]) -> None:
    """Check that every member runs the same protocol parameters (exchange of a digest)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).digest()
    theirs = party.exchange(group, dict.fromkeys(group, digest))
    for peer, other in theirs.items():
        if other != digest:
            raise MpcError(f"party {peer} runs other parameters than party {party.index}")


# --- arithmetic on shares ------------------------------------------------------------------


def full_group(party: Party) -> Group:
    return party.parties


def add_constant(party: Party, group: Group, shares: U64, value: U64 | np.uint64) -> U64:
    """Shares of ``x + c`` for a public ``c`` (the lead adds it)."""
    return shares + value if party.index == group[0] else shares.copy()


def xor_constant(party: Party, group: Group, shares: U64, value: U64 | np.uint64) -> U64:
    """XOR shares of ``x ^ c`` for a public ``c`` (the lead applies it)."""
    return shares ^ value if party.index == group[0] else shares.copy()


def share_sum(party: Party, group: Group, local: U64) -> U64:
    """Arithmetic shares of ``sum over members of local_i`` (every member inputs a vector).

    Each member splits its vector into fresh shares, keeps one and sends one to each other
    member; nobody sees anything but uniformly random words.
    """
    pieces = split(local, len(group))
    mine = pieces[group.index(party.index)]
    outgoing = {j: pieces[k].tobytes() for k, j in enumerate(group) if j != party.index}
    total = mine.copy()
    for peer, payload in party.exchange(group, outgoing).items():
        total += _as_words(peer, payload, local.size)
    return total


def open_all(party: Party, group: Group, shares: U64, *, xor: bool = False) -> U64:
    """Reveal a shared vector to every member of the group."""
    received = party.exchange(group, dict.fromkeys(group, shares.tobytes()))
    total = shares.copy()
    for peer, payload in received.items():
        if xor:
            total ^= _as_words(peer, payload, shares.size)
        else:
            total += _as_words(peer, payload, shares.size)
    return total


def open_to(
    party: Party, group: Group, shares: U64, target: int, *, xor: bool = False
) -> U64 | None:
    """Reveal a shared vector to ``target`` only; others return ``None``."""
    if party.index != target:
        party.send_words(target, shares)
        return None
    total = shares.copy()
    for peer in group:
        if peer != target:
            received = party.recv_words(peer, shares.size)
            if xor:
                total ^= received
            else:
                total += received
    return total


def mul(party: Party, group: Group, x: U64, y: U64) -> U64:
    """Shares of ``x * y mod 2^64`` (elementwise) with one Beaver triple per element."""
    a, b, c = party.correlation("beaver", group, x.size)
    opened = open_all(party, group, np.concatenate([x - a, y - b]))
    d, e = opened[: x.size], opened[x.size :]
    z = c + d * b + e * a
    return add_constant(party, group, z, d * e)


def and_words(party: Party, group: Group, x: U64, y: U64) -> U64:
    """XOR shares of ``x & y`` (64 bitwise ANDs per word) with one Beaver AND triple per word."""
    a, b, c = party.correlation("and", group, x.size)
    opened = open_all(party, group, np.concatenate([x ^ a, y ^ b]), xor=True)
    d, e = opened[: x.size], opened[x.size :]
    z = c ^ (d & b) ^ (e & a)
    return xor_constant(party, group, z, d & e)


def truncate(party: Party, group: Group, x: U64, frac_bits: int, *, bound_bits: int = 48) -> U64:
    """Shares of ``x / 2^f`` rounded stochastically: ``floor(x/2^f)`` or one more.

    One opening, perfectly hiding. The dealer gives arithmetic shares of ``r`` uniform over the
    whole ring ``Z_2^64``, of ``r >> f`` and of the top bit ``msb(r)``. Needs ``|x| <
    2^bound_bits`` with ``bound_bits <= 62``: the lead shifts ``x`` by ``2^bound_bits`` so that
    ``x' = x + 2^bound_bits`` lies in ``[0, 2^63)``, and the group opens ``c = x' + r mod 2^64``
    -- uniform whatever ``x`` is. Because ``x' < 2^63``, the sum wraps exactly when
    ``msb(r) = 1`` and ``msb(c) = 0`` (the trick of Escudero et al., CRYPTO 2020, and Dalskov et
    al.), so ``w = msb(r) (1 - msb(c))`` is a share-linear function of a dealer bit, and

        floor(x' / 2^f) = (c >> f) - (r >> f) + w 2^(64 - f) - borrow,

    where ``borrow = [c mod 2^f < r mod 2^f]`` is dropped: the result is ``floor(x / 2^f)`` plus
    a carry that is 1 with probability ``(x mod 2^f) / 2^f`` (unbiased rounding, one unit in the
    last place at most).

    Leakage: none -- ``c`` is uniform over ``Z_2^64`` for every ``x`` (the previous
    Catrina-Saxena variant with ``r < 2^63`` hid ``x`` only to ``2^(bound_bits + 1 - 63)``, 2^-21
    for a 41-bit bound). ``bound_bits`` is a *correctness* condition: a value beyond it gives a
    wrong result, never a leak. ``tests/privacy/test_truncation.py`` measures the opened values.
    """
    if not frac_bits <= bound_bits <= TRUNC_MAX_BOUND_BITS:
        raise ValueError(
            f"need frac_bits <= bound_bits <= {TRUNC_MAX_BOUND_BITS}, got {frac_bits}, {bound_bits}"
        )
    r, high, top = party.correlation("trunc", group, x.size, frac_bits=frac_bits)
    shifted = add_constant(party, group, x, const(1 << bound_bits))
    c = open_all(party, group, shifted + r)
    wraps = const(1) - (c >> const(RING_BITS - 1))  # public: 1 where msb(c) = 0
    result = wraps * top * const(1 << (RING_BITS - frac_bits)) - high
    return add_constant(
        party, group, result, (c >> const(frac_bits)) - const(1 << (bound_bits - frac_bits))
    )


def mul_fixed(
    party: Party, group: Group, x: U64, y: U64, frac_bits: int, *, bound_bits: int = 48
) -> U64:
    """Fixed-point product: :func:`mul` then :func:`truncate` (``|x*y| < 2^bound_bits`` raw)."""
    return truncate(party, group, mul(party, group, x, y), frac_bits, bound_bits=bound_bits)


def inner_product(party: Party, group: Group, vector: U64, *, left: int) -> U64:
    """Shares (one word) of ``u . w`` where ``left`` holds ``u`` and the other member ``w``.

    Two parties; Du and Atallah's commodity-server scalar product: the dealer gives member
    ``k`` a random vector ``R_k`` and a scalar ``t_k`` with ``t_0 + t_1 = R_0 . R_1``; each
    sends its vector masked by its ``R_k`` (one round, one word per element each way).
    """
    if len(group) != 2 or left not in group:
        raise ValueError("inner_product runs between two parties, one of them 'left'")
    mask, scalar = party.correlation("inner", group, vector.size)
    peer = group[1] if party.index == group[0] else group[0]
    received = party.exchange(group, {peer: (vector + mask).tobytes()})
    theirs = _as_words(peer, received[peer], vector.size)
    if party.index == left:  # t - R . (w + R')
        return scalar - np.sum(mask * theirs, dtype=np.uint64, keepdims=True)
    return scalar + np.sum(theirs * vector, dtype=np.uint64, keepdims=True)  # (u + R) . w + t


def bits_to_arith(party: Party, group: Group, bits: U64) -> U64:
    """Arithmetic shares of bits held as XOR shares (bit 0 of each word), with daBits.

    Opens ``c = b ^ r`` for a dealer bit ``r`` shared both ways; then ``b = c + r - 2cr``.
    """
    r_arith, r_xor = party.correlation("dabit", group, bits.size)
    c = open_all(party, group, (bits ^ r_xor) & const(1), xor=True)
    result = r_arith * (const(1) - const(2) * c)
    return add_constant(party, group, result, c)


def _as_words(peer: int, payload: bytes, count: int) -> U64:
    if len(payload) != 8 * count:
        raise MpcError(f"party {peer} sent {len(payload)} bytes, expected {count} words")
    return np.frombuffer(payload, dtype="<u8").astype(np.uint64, copy=False)
