"""Secure aggregation of client vectors by pairwise masks (Bonawitz et al., CCS 2017).

The server learns the sum (mod 2^64) of the vectors of the clients that stayed to the end, and
nothing else about any one of them, while a minority of clients may drop out mid-round.

One round, semi-honest variant of the paper's protocol (no signatures, no consistency check):

0. *Advertise keys.* Client ``i`` draws two fresh X25519 key pairs -- ``c_i`` to encrypt the
   shares it sends to peers, ``s_i`` to agree on pairwise masks -- and sends the public halves to
   the server, which forwards the roster ``U1`` to every client.
1. *Share keys.* Client ``i`` draws a 32-byte self-mask seed ``b_i`` and splits both ``b_i`` and
   the private bytes of ``s_i`` with Shamir ``t``-of-``|U1|`` over GF(2^521 - 1). The shares for
   peer ``j`` travel through the server encrypted with AES-256-GCM under
   ``HKDF(X25519(c_i, c_j))`` bound to the round, sender and recipient. The clients whose shares
   reached the server form ``U2`` (refused if ``|U2| < t``); each of them receives the shares the
   others of ``U2`` sent it, and a client that dropped before sharing is left out from here on.
2. *Masked input.* With ``p_ij = AES-CTR(HKDF(X25519(s_i, s_j)))`` and the self mask
   ``p_i = AES-CTR(b_i)`` (both expanded over Z_2^64), client ``i`` sends

       y_i = x_i + p_i + sum_{j in U2, j > i} p_ij - sum_{j in U2, j < i} p_ij   (mod 2^64)

   The server keeps the clients whose ``y_i`` arrived: ``U3``.
3. *Unmask.* The server announces ``U3`` (refused if ``|U3| < t``). Every surviving client
   returns, for each peer ``i`` of ``U2``, its share of ``b_i`` if ``i`` is in ``U3`` and its share
   of ``s_i`` otherwise -- never both for the same peer. With ``t`` answers the server rebuilds the
   self masks of the survivors and the mask keys of the dropped, and removes both from
   ``sum_{i in U3} y_i``: the pairwise masks between survivors cancel, those shared with a dropped
   client are recomputed from its key.

Security model. Semi-honest server and clients; the threshold ``t`` (default a majority,
``n // 2 + 1``) is both the number of survivors needed and the collusion bound: the server plus
fewer than ``t`` clients learn nothing about an honest client's vector beyond the sum of the
survivors' vectors. Each ``y_i`` the server sees is ``x_i`` plus the self mask and pairwise masks,
pseudorandom and uniform over Z_2^64 to anyone without ``b_i`` (tested). The self mask is what
keeps a late client safe: if ``y_i`` arrives after the server announced ``i`` as dropped, the
server rebuilds ``s_i`` but never ``b_i`` (honest clients release one or the other per peer), so
``y_i`` stays masked. Not covered: a malicious server that announces different ``U2``/``U3`` to
different clients (the paper's consistency round with signatures), and authentication of
clients (the transport's job).

Quantisation. Real vectors are clipped upstream (see :mod:`.horizontal`) and encoded by
:func:`quantise` as ``round(v * 2^f)`` in two's complement with ``f`` = :data:`QUANT_FRAC_BITS`
(24, a step of 6e-8); the sum is read back with :func:`dequantise`. The caller keeps the sum of
the absolute values below 2^(63 - f) = 2^39 so the ring sum does not wrap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privledger.protocols.mpc.ring import U64, decode_fixed, encode_fixed, prg_words

logger = logging.getLogger(__name__)

QUANT_FRAC_BITS: Final = 24
SHAMIR_PRIME: Final = (1 << 521) - 1  # a Mersenne prime above any 32-byte secret
KEY_BYTES: Final = 32
_SHARE_BYTES: Final = 66  # an element of GF(2^521 - 1)
_NONCE_BYTES: Final = 12
_DST: Final = b"privledger/fl/secagg/v1"


class SecAggError(Exception):
    """A secure aggregation round cannot go on (too few clients, a malformed message)."""


# --- quantisation ---------------------------------------------------------------------------


def quantise(values: npt.ArrayLike, frac_bits: int = QUANT_FRAC_BITS) -> U64:
    """Reals as ``round(v * 2^f)`` in Z_2^64 (two's complement); refuses ``|v| >= 2^(63-f)``."""
    return encode_fixed(values, frac_bits)


def check_range(vector: npt.ArrayLike, clients: int, frac_bits: int = QUANT_FRAC_BITS) -> None:
    """Refuse a vector whose quantised sum over ``clients`` clients could wrap around 2^64."""
    limit = 2.0 ** (62 - frac_bits) / max(clients, 1)
    largest = float(np.max(np.abs(np.asarray(vector, dtype=np.float64))))
    if not largest < limit:
        raise ValueError(f"a value of {largest:.3g} exceeds the quantised range {limit:.3g}")


def dequantise(values: U64, frac_bits: int = QUANT_FRAC_BITS) -> npt.NDArray[np.float64]:
    """Inverse of :func:`quantise` (for a sum, as long as it did not wrap)."""
    return decode_fixed(values, frac_bits)


# --- Shamir secret sharing over GF(2^521 - 1) -------------------------------------------------


def shamir_split(secret: bytes, holders: Sequence[int], threshold: int) -> dict[int, int]:
    """Shares of a secret of at most 64 bytes for ``holders`` (ids >= 0, evaluated at id + 1).

    Any ``threshold`` shares rebuild the secret; fewer reveal nothing (the polynomial's other
    coefficients are uniform in the field).
    """
    if len(secret) > 64:
        raise ValueError("shamir_split takes secrets of at most 64 bytes")
    if len(set(holders)) != len(holders) or any(h < 0 for h in holders):
        raise ValueError("holders must be distinct non-negative ids")
    if not 1 <= threshold <= len(holders):
        raise ValueError(f"threshold {threshold} must be in 1..{len(holders)}")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [secrets.randbelow(SHAMIR_PRIME) for _ in range(threshold - 1)]
    shares = {}
    for holder in holders:
        x, value = holder + 1, 0
        for coefficient in reversed(coefficients):  # Horner
            value = (value * x + coefficient) % SHAMIR_PRIME
        shares[holder] = value
    return shares


def shamir_combine(shares: Mapping[int, int], length: int) -> bytes:
    """The ``length``-byte secret from shares (holder id -> share) by Lagrange at zero."""
    if not shares:
        raise ValueError("no shares to combine")
    points = [(holder + 1, value % SHAMIR_PRIME) for holder, value in shares.items()]
    secret = 0
    for k, (x_k, y_k) in enumerate(points):
        numerator, denominator = 1, 1
        for m, (x_m, _) in enumerate(points):
            if m != k:
                numerator = numerator * x_m % SHAMIR_PRIME
                denominator = denominator * (x_m - x_k) % SHAMIR_PRIME
        secret = (secret + y_k * numerator * pow(denominator, -1, SHAMIR_PRIME)) % SHAMIR_PRIME
    if secret >= 1 << (8 * length):
        raise SecAggError("shares do not combine to a secret of the expected size")
    return secret.to_bytes(length, "big")


# --- messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdvertisedKeys:
    """Round 0: a client's two public keys (raw 32-byte X25519)."""

    client: int
    cipher_public: bytes
    mask_public: bytes


@dataclass(frozen=True)
class UnmaskShares:
    """Round 3: one client's shares of survivors' self-mask seeds and dropped clients' mask keys."""

    client: int
    self_mask_shares: dict[int, int]
    mask_key_shares: dict[int, int]


# --- the client -----------------------------------------------------------------------------


class SecAggClient:
    """One client's side of one aggregation round (make a new object for every round)."""

    def __init__(self, client: int, *, round_id: int, vector_length: int, threshold: int) -> None:
        if client < 0 or vector_length < 1 or threshold < 2:
            raise ValueError("need client >= 0, vector_length >= 1 and threshold >= 2")
        self.client = client
        self.round_id = round_id
        self.vector_length = vector_length
        self.threshold = threshold
        self._cipher_key = X25519PrivateKey.generate()
        self._mask_key = X25519PrivateKey.generate()
        self._self_seed = secrets.token_bytes(KEY_BYTES)
        self._roster: dict[int, AdvertisedKeys] = {}
        self._sharing: set[int] = set()  # U2: the clients whose shares arrived, this one too
        self._held_seed_shares: dict[int, int] = {}
        self._held_key_shares: dict[int, int] = {}
        self._sent_input = False

    def advertise_keys(self) -> AdvertisedKeys:
        return AdvertisedKeys(
            self.client, _raw_public(self._cipher_key), _raw_public(self._mask_key)
        )

    def share_keys(self, roster: Mapping[int, AdvertisedKeys]) -> dict[int, bytes]:
        """Encrypted shares of ``b_i`` and of ``s_i`` for every peer in the roster ``U1``."""
        if self.client not in roster or len(roster) < self.threshold:
            raise SecAggError(f"client {self.client}: roster of {len(roster)} is too small")
        if len({keys.mask_public for keys in roster.values()}) != len(roster):
            raise SecAggError("two clients advertised the same mask key")
        self._roster = dict(roster)
        holders = sorted(roster)
        seed_shares = shamir_split(self._self_seed, holders, self.threshold)
        key_shares = shamir_split(_raw_private(self._mask_key), holders, self.threshold)
        outgoing = {}
        for peer in holders:
            plaintext = b"".join(
                [
                    self.client.to_bytes(4, "big"),
                    peer.to_bytes(4, "big"),
                    seed_shares[peer].to_bytes(_SHARE_BYTES, "big"),
                    key_shares[peer].to_bytes(_SHARE_BYTES, "big"),
                ]
            )
            if peer == self.client:
                self._keep_shares(self.client, plaintext)
                continue
            key = self._share_cipher(peer, sender=self.client, recipient=peer)
            nonce = os.urandom(_NONCE_BYTES)
            outgoing[peer] = nonce + key.encrypt(nonce, plaintext, None)
        return outgoing

    def masked_input(self, vector: U64, inbox: Mapping[int, bytes]) -> U64:
        """``y_i``: the vector plus the self mask and the signed pairwise masks with every peer
        whose shares reached this client (``U2``: a peer that dropped out before sharing is
        left out, as every other client leaves it out)."""
        if vector.dtype != np.uint64 or vector.shape != (self.vector_length,):
            raise ValueError(f"need a uint64 vector of length {self.vector_length}")
        sharing = set(inbox) | {self.client}
        if not sharing <= set(self._roster) or len(sharing) < self.threshold:
            raise SecAggError(f"client {self.client}: shares from too few peers of the roster")
        for sender, message in inbox.items():
            key = self._share_cipher(sender, sender=sender, recipient=self.client)
            try:
                plaintext = key.decrypt(message[:_NONCE_BYTES], message[_NONCE_BYTES:], None)
            except Exception as exc:
                raise SecAggError(f"client {self.client}: bad share from {sender}") from exc
            if plaintext[:8] != sender.to_bytes(4, "big") + self.client.to_bytes(4, "big"):
                raise SecAggError(f"client {self.client}: share from {sender} is misaddressed")
            self._keep_shares(sender, plaintext)
        self._sharing = sharing
        masked = vector + self_mask(self._self_seed, self.round_id, self.vector_length)
        for peer, keys in self._roster.items():
            if peer == self.client or peer not in sharing:
                continue
            mask = pairwise_mask(
                self._mask_key,
                keys.mask_public,
                self.client,
                peer,
                self.round_id,
                self.vector_length,
            )
            masked = masked + mask if peer > self.client else masked - mask
        self._sent_input = True
        return masked

    def unmask(self, survivors: Sequence[int]) -> UnmaskShares:
        """Shares that let the server remove the masks: ``b`` of survivors (``U3``), ``s`` of the
        peers of ``U2`` that dropped."""
        alive = set(survivors)
        if not self._sent_input or self.client not in alive:
            raise SecAggError(f"client {self.client} sent no input in this round")
        if len(alive) < self.threshold or not alive <= self._sharing:
            raise SecAggError(f"refusing to unmask for survivors {sorted(alive)}")
        return UnmaskShares(
            self.client,
            {peer: self._held_seed_shares[peer] for peer in self._sharing if peer in alive},
            {peer: self._held_key_shares[peer] for peer in self._sharing if peer not in alive},
        )

    def _keep_shares(self, sender: int, plaintext: bytes) -> None:
        body = plaintext[8:]
        if len(body) != 2 * _SHARE_BYTES:
            raise SecAggError(f"share from client {sender} has the wrong size")
        self._held_seed_shares[sender] = int.from_bytes(body[:_SHARE_BYTES], "big")
        self._held_key_shares[sender] = int.from_bytes(body[_SHARE_BYTES:], "big")

    def _share_cipher(self, peer: int, *, sender: int, recipient: int) -> AESGCM:
        public = X25519PublicKey.from_public_bytes(self._roster[peer].cipher_public)
        info = _DST + f"|share|{self.round_id}|{sender}|{recipient}".encode()
        return AESGCM(_hkdf(self._cipher_key.exchange(public), info))


# --- the server -----------------------------------------------------------------------------


class SecAggServer:
    """The aggregator of one round: routes messages and learns only the survivors' sum."""

    def __init__(self, *, round_id: int, vector_length: int, threshold: int) -> None:
        self.round_id = round_id
        self.vector_length = vector_length
        self.threshold = threshold
        self.roster: dict[int, AdvertisedKeys] = {}
        self.sharing: set[int] = set()  # U2: the clients that sent their shares
        self.masked: dict[int, U64] = {}

    def collect_keys(self, adverts: Sequence[AdvertisedKeys]) -> dict[int, AdvertisedKeys]:
        self.roster = {advert.client: advert for advert in adverts}
        if len(self.roster) < self.threshold:
            raise SecAggError(f"{len(self.roster)} clients, the threshold is {self.threshold}")
        return dict(self.roster)

    def route_shares(
        self, outboxes: Mapping[int, Mapping[int, bytes]]
    ) -> dict[int, dict[int, bytes]]:
        """Re-address each client's encrypted shares to their recipients (opaque to the server);
        the senders are the round's ``U2``."""
        self.sharing = set(outboxes) & set(self.roster)
        if len(self.sharing) < self.threshold:
            raise SecAggError(
                f"{len(self.sharing)} clients shared, the threshold is {self.threshold}"
            )
        inboxes: dict[int, dict[int, bytes]] = {}
        for sender in sorted(self.sharing):
            outbox = outboxes[sender]
            for recipient, message in outbox.items():
                inboxes.setdefault(recipient, {})[sender] = message
        return inboxes

    def collect_masked(self, client: int, masked: U64) -> None:
        if client not in self.sharing:
            raise SecAggError(f"client {client} is not in this round")
        if masked.dtype != np.uint64 or masked.shape != (self.vector_length,):
            raise SecAggError(f"client {client} sent a malformed masked vector")
        self.masked[client] = masked

    def survivors(self) -> list[int]:
        if len(self.masked) < self.threshold:
            raise SecAggError(f"only {len(self.masked)} inputs, the threshold is {self.threshold}")
        return sorted(self.masked)

    def aggregate(self, responses: Sequence[UnmaskShares]) -> U64:
        """The sum of the survivors' vectors mod 2^64, from at least ``t`` unmask responses."""
        alive = self.survivors()
        answers = [r for r in responses if r.client in self.masked]
        if len(answers) < self.threshold:
            raise SecAggError(f"{len(answers)} unmask responses, the threshold is {self.threshold}")
        total = np.zeros(self.vector_length, dtype=np.uint64)
        for vector in self.masked.values():
            total += vector
        for client in alive:
            shares = {r.client: r.self_mask_shares[client] for r in answers}
            seed = shamir_combine(shares, KEY_BYTES)
            total -= self_mask(seed, self.round_id, self.vector_length)
        for dropped in sorted(self.sharing - set(alive)):
            shares = {r.client: r.mask_key_shares[dropped] for r in answers}
            dropped_key = X25519PrivateKey.from_private_bytes(shamir_combine(shares, KEY_BYTES))
            for client in alive:
                public = self.roster[client].mask_public
                mask = pairwise_mask(
                    dropped_key, public, dropped, client, self.round_id, self.vector_length
                )
                # survivor `client` added +mask when dropped > client, -mask otherwise
                total = total - mask if dropped > client else total + mask
        logger.debug(
            "secagg round %d: %d of %d clients aggregated",
            self.round_id,
            len(alive),
            len(self.roster),
        )
        return total


# --- masks ----------------------------------------------------------------------------------


def self_mask(seed: bytes, round_id: int, length: int) -> U64:
    """The self mask ``p_i``: AES-256-CTR keystream under the seed ``b_i``."""
    return prg_words(seed, _mask_nonce("self", round_id), length)


def pairwise_mask(
    own: X25519PrivateKey, peer_public: bytes, own_id: int, peer_id: int, round_id: int, length: int
) -> U64:
    """``p_ij``: the same words on both ends, from the X25519 agreement of the mask keys."""
    shared = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    low, high = sorted((own_id, peer_id))
    seed = _hkdf(shared, _DST + f"|pair|{round_id}|{low}|{high}".encode())
    return prg_words(seed, _mask_nonce("pair", round_id), length)


def secure_sum(
    vectors: Mapping[int, U64],
    *,
    round_id: int = 0,
    threshold: int | None = None,
    drop_before_input: frozenset[int] = frozenset(),
    drop_before_sharing: frozenset[int] = frozenset(),
) -> tuple[U64, dict[int, U64]]:
    """Run one in-process round; returns the sum and the server's view (masked vectors).

    Clients in ``drop_before_sharing`` advertise their keys and vanish; those in
    ``drop_before_input`` also share theirs and then vanish before sending their masked vector
    (the cases the protocol recovers from); the sum covers the others.
    """
    clients = sorted(vectors)
    if not clients:
        raise ValueError("no clients")
    length = next(iter(vectors.values())).size
    t = threshold if threshold is not None else len(clients) // 2 + 1
    t = max(t, 2)
    parties = {
        c: SecAggClient(c, round_id=round_id, vector_length=length, threshold=t) for c in clients
    }
    server = SecAggServer(round_id=round_id, vector_length=length, threshold=t)
    roster = server.collect_keys([parties[c].advertise_keys() for c in clients])
    sharing = [c for c in clients if c not in drop_before_sharing]
    inboxes = server.route_shares({c: parties[c].share_keys(roster) for c in sharing})
    for client in sharing:
        if client not in drop_before_input:
            server.collect_masked(
                client, parties[client].masked_input(vectors[client], inboxes[client])
            )
    alive = server.survivors()
    total = server.aggregate([parties[c].unmask(alive) for c in alive])
    return total, dict(server.masked)


def _raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(secret)


def _mask_nonce(kind: str, round_id: int) -> bytes:
    return hashlib.sha256(_DST + f"|{kind}|{round_id}".encode()).digest()[:16]
