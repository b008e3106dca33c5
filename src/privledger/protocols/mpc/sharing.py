"""Additive secret sharing over Z_2^64 for N parties, with a trusted dealer for correlations.

Values live in the ring Z_2^64 as ``numpy.uint64`` arrays; numpy's wrap-around on ``uint64``
*arrays* is the ring arithmetic (scalars are avoided: numpy warns on scalar overflow). A secret
``x`` is split among the parties of a group as ``x = sum(x_i) mod 2^64`` (*arithmetic* shares)
or, for bit-level work, as ``x = xor(x_i)`` over packed 64-bit words (*XOR* shares).

Fixed point. A real ``v`` is encoded as the two's complement of ``round(v * 2^f)`` with ``f``
fractional bits (default :data:`DEFAULT_FRAC_BITS` = 16, i.e. a resolution of 2^-16 ~ 1.5e-5).
The range is ``|v| < 2^(63-f)`` (~1.4e14 for f = 16); encoding is exact to 2^-(f+1) while
``|v| < 2^(52-f)`` (float64 has a 53-bit mantissa). A product of two encodings carries 2f
fractional bits and must be truncated (:func:`truncate`) and stay below 2^63 before that.

Parties and channels. A :class:`Party` knows its index and a :class:`Channel` to every peer
(the mesh is complete: one two-party channel per pair). A *group* is a sorted tuple of party
indices that run a sub-protocol together; its first member is the group's *lead*, which adds
public constants and talks to the dealer. Messages between two parties are turn-based (the lower
index sends first in every exchange), so each channel's transcript hash is equal on both ends.
:func:`local_mesh` builds an in-memory mesh (``channel_pair``) for tests and benchmarks.

Randomness. Masks come from :mod:`secrets`; vectors longer than 64 words are expanded from a
fresh 32-byte :mod:`secrets` seed with AES-256-CTR (``cryptography``), a standard PRG that is
~100x faster than drawing every word from the OS.

Correlated randomness -- the dealer. Beaver triples (arithmetic ``c = a*b`` and bitwise
``c = a & b``), edaBits (a random ``r`` shared both arithmetically and as XOR-shared bits),
daBits (a random bit shared both ways), truncation pairs (``r``, ``r >> f``) and two-party
inner-product pairs (``R_0``, ``R_1``, shares of ``R_0 . R_1``) come from a
:class:`Dealer`: a **trusted third party**, connected to every party by its own channel, that
never sees an input or an opened value. Compression as in CrypTen's TTP provider: at start-up
the dealer gives each party a 32-byte seed; a party expands its share of every correlation from
its seed (AES-CTR, nonce bound to the operation, group and a per-group counter) without talking
to anyone, except the group lead, which asks the dealer for its correcting share. The parties do
*not* generate triples themselves (OT- or HE-based generation is not implemented).

What the dealer is trusted for: it knows every party's correlated randomness, so a dealer that
colludes with any party (or reads the peer traffic) learns the other parties' inputs; a dealer
that sends wrong corrections makes the output wrong without anybody noticing. On its own it
learns only the sequence of (operation, group, size) requests.

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
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal, Self, TypeVar

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privledger.protocols.channel import (
    Channel,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    channel_pair,
)

logger = logging.getLogger(__name__)

U64 = npt.NDArray[np.uint64]
Group = tuple[int, ...]
CorrelationOp = Literal["beaver", "and", "edabit", "dabit", "trunc", "inner"]

RING_BITS: Final = 64
DEFAULT_FRAC_BITS: Final = 16
SEED_BYTES: Final = 32
MAX_CORRELATIONS: Final = 1 << 26  # per dealer request (512 MiB of words)
TRUNC_MAX_BOUND_BITS: Final = 62  # truncate needs x + 2^bound < 2^63

_MASK64: Final = (1 << 64) - 1
_SMALL: Final = 64  # vectors up to this many words come straight from secrets
_DST: Final = b"privledger/mpc/v2"
_ABORT: Final = b"privledger/mpc/abort/v1\x00"  # 24 bytes; see "Dropout" above
DEALER_POLL_S: Final = 0.5  # how often a dealer thread waiting for a request checks for a stop
_OP_PARTS: Final[dict[str, int]] = {
    "beaver": 3,
    "and": 3,
    "edabit": 2,
    "dabit": 2,
    "trunc": 3,
    "inner": 2,
}
_T = TypeVar("_T")


class MpcError(Exception):
    """The parties disagree on a protocol's parameters, or a message is malformed."""


class PartyDropout(ChannelError):
    """A peer (or the dealer) did not answer or closed its channel: the task fails."""


class PeerSilent(PartyDropout, ChannelTimeout):
    """A peer (or the dealer) did not answer in time or could not be reached -- noticed here or
    reported by the party that noticed it first. A :class:`ChannelTimeout`, so a node records it
    as an unreachable peer."""


# --- ring and fixed point ------------------------------------------------------------------


def const(value: int) -> np.uint64:
    """``value mod 2^64`` as a ``numpy.uint64`` (negative values wrap, two's complement)."""
    return np.uint64(value & _MASK64)


def words(values: npt.ArrayLike) -> U64:
    """Integers (``-2^63 <= v < 2^64``, negatives wrap) as ring elements; no non-integers."""
    if isinstance(values, list | tuple):  # Python ints: numpy might turn 2^64 - 1 into a float
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        array = np.asarray(values)
    if array.dtype == np.uint64:
        return np.ascontiguousarray(array, dtype=np.uint64).reshape(-1)
    if array.dtype.kind in "iub":
        return np.ascontiguousarray(array.astype(np.int64).view(np.uint64)).reshape(-1)
    flat = array.reshape(-1).tolist()
    if array.dtype.kind != "O" or not all(isinstance(v, int | np.integer) for v in flat):
        raise ValueError(f"ring elements must be integers, got {array.dtype}")
    if any(isinstance(v, bool) or not -(1 << 63) <= int(v) < (1 << 64) for v in flat):
        raise ValueError("ring elements must be integers in -2^63 .. 2^64 - 1")
    return np.asarray([int(v) & _MASK64 for v in flat], dtype=np.uint64)


def to_signed(values: U64) -> npt.NDArray[np.int64]:
    """Ring elements read as two's complement integers in ``[-2^63, 2^63)``."""
    return values.view(np.int64)


def encode_fixed(values: npt.ArrayLike, frac_bits: int = DEFAULT_FRAC_BITS) -> U64:
    """Encode reals as ``round(v * 2^f) mod 2^64``; refuse NaN, inf and ``|v| >= 2^(63-f)``."""
    _check_frac_bits(frac_bits)
    real = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(real)):
        raise ValueError("fixed-point encoding needs finite values")
    scaled = np.rint(real * float(1 << frac_bits))
    if scaled.size and float(np.max(np.abs(scaled))) >= 2.0**63:
        raise ValueError(f"value out of the fixed-point range |v| < 2^{63 - frac_bits}")
    return scaled.astype(np.int64).view(np.uint64)


def decode_fixed(values: U64, frac_bits: int = DEFAULT_FRAC_BITS) -> npt.NDArray[np.float64]:
    """Inverse of :func:`encode_fixed` (to float64)."""
    _check_frac_bits(frac_bits)
    return to_signed(values).astype(np.float64) / float(1 << frac_bits)


def _check_frac_bits(frac_bits: int) -> None:
    if not 0 <= frac_bits <= 40:
        raise ValueError(f"frac_bits must be in 0..40, not {frac_bits}")


# --- randomness and local sharing ----------------------------------------------------------


def prg_words(seed: bytes, nonce: bytes, count: int) -> U64:
    """``count`` pseudorandom words: AES-256-CTR keystream under ``seed`` from ``nonce``."""
    if len(seed) != SEED_BYTES or len(nonce) != 16:
        raise ValueError("prg_words needs a 32-byte seed and a 16-byte nonce")
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    return np.frombuffer(encryptor.update(bytes(8 * count)), dtype="<u8").astype(
        np.uint64, copy=False
    )


def random_words(count: int) -> U64:
    """Uniform ring elements: from :mod:`secrets`, AES-CTR-expanded from a secret seed if long."""
    if count <= _SMALL:
        return np.frombuffer(secrets.token_bytes(8 * count), dtype="<u8").astype(
            np.uint64, copy=False
        )
    return prg_words(secrets.token_bytes(SEED_BYTES), bytes(16), count)


def split(secret: U64, parties: int) -> list[U64]:
    """Additive shares of ``secret`` for ``parties`` parties (the last one is the correction)."""
    if parties < 1:
        raise ValueError("need at least one party")
    shares = [random_words(secret.size) for _ in range(parties - 1)]
    last = secret.copy()
    for share in shares:
        last -= share
    return [*shares, last]


def reconstruct(shares: Sequence[U64]) -> U64:
    """Sum of additive shares mod 2^64."""
    total = np.zeros_like(shares[0])
    for share in shares:
        total += share
    return total


# --- parties and the mesh ------------------------------------------------------------------


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
        _raise_if_abort(payload, f"party {self.index}: party {peer}")
        return payload

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
        sizes = _layout(op, count)
        own = sizes[: len(sizes) - _lead_corrections(op)] if is_lead else sizes
        nonce = _nonce(op, group, label, self.index, frac_bits)
        shares = _cut(prg_words(seed, nonce, sum(own)), own)
        if is_lead:
            fixed = sizes[len(own) :]
            request = {"op": op, "group": list(group), "label": label, "n": count, "f": frac_bits}
            correction = self._ask_dealer(json.dumps(request).encode(), sum(fixed))
            shares += _cut(correction, fixed)
        return shares

    def abort(self, cause: BaseException | None = None) -> None:
        """Send every peer and the dealer an abort notice saying why (best effort), then close
        every channel: the others fail fast with :class:`PeerSilent` when ``cause`` was a silent
        or unreachable peer, else with :class:`PartyDropout`."""
        notice = _abort_notice(self.index, cause)
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
        _raise_if_abort(payload, f"party {self.index}: the dealer")
        return payload


def _is_silence(cause: BaseException | None) -> bool:
    """Whether a failure means a peer is silent or unreachable (rather than that it quit): a
    timeout, or a broken link other than a peer's own close or abort."""
    if isinstance(cause, ChannelTimeout):
        return True
    return isinstance(cause, ChannelError) and not isinstance(cause, ChannelClosed | PartyDropout)


def _abort_notice(index: int, cause: BaseException | None) -> bytes:
    reason = "aborted" if cause is None else f"{type(cause).__name__}: {cause}"
    fields = {"party": index, "silent": _is_silence(cause), "reason": reason[:300]}
    return _ABORT + json.dumps(fields, sort_keys=True).encode()


def _raise_if_abort(payload: bytes, who: str) -> None:
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


def _layout(op: str, count: int) -> list[int]:
    """Word counts of an op's components (an inner-product correlation ends with a scalar)."""
    sizes = [count] * _OP_PARTS[op]
    if op == "inner":
        sizes[1] = 1
    return sizes


def _cut(values: U64, sizes: Sequence[int]) -> list[U64]:
    bounds = np.cumsum([0, *sizes])
    return [values[bounds[k] : bounds[k + 1]] for k in range(len(sizes))]


def _lead_corrections(op: str) -> int:
    """How many of an op's components the lead receives from the dealer (the rest from its seed)."""
    if op == "inner":
        return 1  # the lead's scalar
    if op == "trunc":
        return 3  # r, r >> f and msb(r) are correlated: all three are dealer-corrected
    return 2 if op == "dabit" else 1


def _nonce(op: str, group: Group, label: int, member: int, frac_bits: int) -> bytes:
    text = f"{op}|{','.join(map(str, group))}|{label}|{member}|{frac_bits}".encode()
    return hashlib.sha256(_DST + b"|" + text).digest()[:16]


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


# --- the dealer ----------------------------------------------------------------------------


class Dealer:
    """Trusted dealer: hands out seeds, then answers group leads' correlation requests.

    ``serve()`` runs one thread per party channel until the party closes it; a party's abort
    notice or a broken link to any party stops every thread (the session cannot finish without
    that party), and :meth:`join` then raises. See the module docstring for what the dealer is
    trusted with.
    """

    def __init__(self, channels: Mapping[int, Channel]) -> None:
        self._channels = dict(channels)
        self._seeds = {i: secrets.token_bytes(SEED_BYTES) for i in channels}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._failure: PartyDropout | None = None
        self._failure_lock = threading.Lock()

    def serve(self) -> None:
        for index in sorted(self._channels):
            thread = threading.Thread(
                target=self._serve_one, args=(index,), name=f"mpc-dealer-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float | None = None) -> None:
        """Wait until every party closed its channel. Raise :class:`PartyDropout` (or
        :class:`PeerSilent`) when a party aborted or a link broke, or when parties are still
        running after ``timeout`` seconds (the dealer then stops serving them)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        if any(thread.is_alive() for thread in self._threads):
            self._abandon(PeerSilent(f"dealer: parties still running after {timeout} s"))
        if self._failure is not None:
            raise self._failure

    def _abandon(self, failure: PartyDropout) -> None:
        """Stop serving every party and pass the first failure on to each (what :meth:`join`
        raises), so a party waiting for the dealer fails as the party that aborted did."""
        with self._failure_lock:
            if self._failure is not None:
                return
            self._failure = failure
        self._stop.set()
        notice = _abort_notice(-1, failure)
        for index, channel in self._channels.items():
            try:
                channel.send(notice)
            except ChannelError as exc:  # that party is gone, or has closed its channel
                logger.debug("dealer: abort notice to party %d not delivered: %s", index, exc)

    def _serve_one(self, index: int) -> None:
        channel = self._channels[index]
        try:
            channel.send(self._seeds[index])
            while not self._stop.is_set():
                try:
                    request = channel.recv(DEALER_POLL_S)
                except ChannelTimeout:
                    continue  # idle: look at the stop flag again
                _raise_if_abort(request, f"dealer: party {index}")
                channel.send(self.answer(index, request).astype("<u8", copy=False).tobytes())
        except ChannelClosed:
            return  # the party is done (or the session was stopped and its channel closed)
        except PartyDropout as exc:
            logger.warning("dealer: party %d aborted the session: %s", index, exc)
            self._abandon(exc)
        except Exception as exc:  # a bad request or a broken link: the session cannot finish
            logger.warning("dealer: stops serving party %d: %s", index, exc)
            failure = f"dealer: link to party {index} failed ({type(exc).__name__}: {exc})"
            self._abandon(PeerSilent(failure) if _is_silence(exc) else PartyDropout(failure))
            channel.close()

    def answer(self, index: int, request: bytes) -> U64:
        """The lead's correcting shares for one request (validated)."""
        op, group, label, count, frac_bits = self._parse(index, request)
        sizes = _layout(op, count)
        shares: dict[int, list[U64]] = {}
        for member in group:
            own = sizes[: len(sizes) - _lead_corrections(op)] if member == group[0] else sizes
            nonce = _nonce(op, group, label, member, frac_bits)
            shares[member] = _cut(prg_words(self._seeds[member], nonce, sum(own)), own)
        others = [shares[m] for m in group[1:]]
        lead = shares[group[0]]
        if op == "inner":  # scalars: t_lead + t_other = R_lead . R_other
            dot = np.asarray([np.sum(lead[0] * others[0][0], dtype=np.uint64)], dtype=np.uint64)
            return _correct(dot, [others[0][1]], True)
        if op in ("beaver", "and"):
            arith = op == "beaver"
            a = _combine([lead[0], *(s[0] for s in others)], arith)
            b = _combine([lead[1], *(s[1] for s in others)], arith)
            c = a * b if arith else a & b
            return _correct(c, [s[2] for s in others], arith)
        if op == "edabit":
            r = _combine([lead[0], *(s[0] for s in others)], True)
            return _correct(r, [s[1] for s in others], False)
        if op == "dabit":
            bit = random_words(count) & const(1)
            arith_share = _correct(bit, [s[0] for s in others], True)
            return np.concatenate([arith_share, _correct(bit, [s[1] for s in others], False)])
        r = random_words(count)  # trunc: r uniform over the whole ring (see truncate)
        high = r >> const(frac_bits)
        top = r >> const(RING_BITS - 1)
        arith_r = _correct(r, [s[0] for s in others], True)
        arith_high = _correct(high, [s[1] for s in others], True)
        return np.concatenate([arith_r, arith_high, _correct(top, [s[2] for s in others], True)])

    def _parse(self, index: int, request: bytes) -> tuple[CorrelationOp, Group, int, int, int]:
        try:
            fields = json.loads(request)
            op, label, count, frac_bits = fields["op"], fields["label"], fields["n"], fields["f"]
            group = tuple(int(m) for m in fields["group"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MpcError(f"malformed dealer request from party {index}") from exc
        if op not in _OP_PARTS or not group or group[0] != index:
            raise MpcError(f"party {index} may not ask for {op!r} for group {group}")
        if list(group) != sorted(set(group)) or not set(group) <= set(self._seeds):
            raise MpcError(f"bad group {group}")
        if type(count) is not int or not 0 <= count <= MAX_CORRELATIONS:
            raise MpcError(f"bad correlation count {count!r}")
        if type(label) is not int or type(frac_bits) is not int or not 0 <= frac_bits <= 63:
            raise MpcError("bad label or frac_bits")
        return op, group, label, count, frac_bits


def _combine(shares: Sequence[U64], arith: bool) -> U64:
    total = shares[0].copy()
    for share in shares[1:]:
        if arith:
            total += share
        else:
            total ^= share
    return total


def _correct(secret: U64, others: Sequence[U64], arith: bool) -> U64:
    """The share that, combined with ``others``, gives ``secret``."""
    missing = secret.copy()
    for share in others:
        if arith:
            missing -= share
        else:
            missing ^= share
    return missing


@dataclass
class LocalMesh:
    """An in-memory mesh of parties (and a serving dealer); close it to stop the dealer."""

    parties: list[Party]
    dealer: Dealer | None
    channels: list[Channel] = field(repr=False)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        if self.dealer is not None:
            try:
                self.dealer.join(5.0)
            except PartyDropout as exc:  # the parties already raised theirs
                logger.debug("local mesh: the dealer saw the session fail: %s", exc)

    def run(self, work: Callable[[Party], _T]) -> list[_T]:
        """Run ``work(party)`` for every party in its own thread; re-raise the first failure."""
        with ThreadPoolExecutor(len(self.parties)) as pool:
            futures = [pool.submit(work, party) for party in self.parties]
            return [future.result() for future in futures]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def local_mesh(size: int, *, dealer: bool = True, timeout: float | None = 30.0) -> LocalMesh:
    """``size`` parties connected pairwise by in-memory channels, plus a running dealer."""
    if size < 2:
        raise ValueError("a mesh needs at least two parties")
    peers: list[dict[int, Channel]] = [{} for _ in range(size)]
    channels: list[Channel] = []
    for i in range(size):
        for j in range(i + 1, size):
            end_i, end_j = channel_pair()
            peers[i][j], peers[j][i] = end_i, end_j
            channels += [end_i, end_j]
    dealer_ends: dict[int, Channel] = {}
    party_dealer: list[Channel | None] = [None] * size
    for i in range(size):
        if dealer:
            end_party, end_dealer = channel_pair()
            party_dealer[i], dealer_ends[i] = end_party, end_dealer
            channels += [end_party, end_dealer]
    parties = [Party(i, peers[i], dealer=party_dealer[i], timeout=timeout) for i in range(size)]
    the_dealer = Dealer(dealer_ends) if dealer else None
    if the_dealer is not None:
        the_dealer.serve()
    return LocalMesh(parties, the_dealer, channels)


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
