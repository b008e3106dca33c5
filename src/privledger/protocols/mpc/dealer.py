"""The trusted dealer of the secret-sharing engine (:mod:`privledger.protocols.mpc.sharing`),
and an in-memory mesh of parties with a dealer for tests and benchmarks.

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
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self, TypeVar

import numpy as np

from privledger.protocols.channel import (
    Channel,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    channel_pair,
)
from privledger.protocols.mpc.correlations import (
    MAX_CORRELATIONS,
    OP_PARTS,
    CorrelationOp,
    Group,
    correlation_nonce,
    cut,
    layout,
    lead_corrections,
)
from privledger.protocols.mpc.ring import RING_BITS, SEED_BYTES, U64, const, prg_words, random_words
from privledger.protocols.mpc.sharing import (
    MpcError,
    Party,
    PartyDropout,
    PeerSilent,
    abort_notice,
    is_silence,
    raise_if_abort,
)

logger = logging.getLogger(__name__)

DEALER_POLL_S: Final = 0.5  # how often a dealer thread waiting for a request checks for a stop
_T = TypeVar("_T")


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
        notice = abort_notice(-1, failure)
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
                raise_if_abort(request, f"dealer: party {index}")
                channel.send(self.answer(index, request).astype("<u8", copy=False).tobytes())
        except ChannelClosed:
            return  # the party is done (or the session was stopped and its channel closed)
        except PartyDropout as exc:
            logger.warning("dealer: party %d aborted the session: %s", index, exc)
            self._abandon(exc)
        except Exception as exc:  # a bad request or a broken link: the session cannot finish
            logger.warning("dealer: stops serving party %d: %s", index, exc)
            failure = f"dealer: link to party {index} failed ({type(exc).__name__}: {exc})"
            self._abandon(PeerSilent(failure) if is_silence(exc) else PartyDropout(failure))
            channel.close()

    def answer(self, index: int, request: bytes) -> U64:
        """The lead's correcting shares for one request (validated)."""
        op, group, label, count, frac_bits = self._parse(index, request)
        sizes = layout(op, count)
        shares: dict[int, list[U64]] = {}
        for member in group:
            own = sizes[: len(sizes) - lead_corrections(op)] if member == group[0] else sizes
            nonce = correlation_nonce(op, group, label, member, frac_bits)
            shares[member] = cut(prg_words(self._seeds[member], nonce, sum(own)), own)
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
        if op not in OP_PARTS or not group or group[0] != index:
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
