"""The Noise_KK_25519_AESGCM_SHA256 handshake, after the Noise Protocol Framework (revision 34).

Only what the peer channel needs: the KK pattern, X25519, AES-256-GCM and SHA-256, built on the
``cryptography`` primitives (X25519, AESGCM, HKDF-SHA256, SHA-256). Names follow the
specification's sections 5.1-5.3 (``CipherState``, ``SymmetricState``, ``HandshakeState``), so
that the code can be read against it::

    KK:
      -> s
      <- s
      ...
      -> e, es, ss
      <- e, ee, se

Security model
--------------
* Both static keys are known in advance (they are registered on chain), so the first message is
  already authenticated by ``es`` and ``ss`` and the second by ``ee`` and ``se``. The transport
  keys from :meth:`HandshakeState.split` mix ``ee``: they are **forward secret** once both
  ephemeral private keys are gone (a later theft of a static key does not open recorded traffic)
  and **fresh per handshake** even when every other input (static keys, prologue) repeats, which
  is what keeps (key, nonce) pairs unique across re-runs and recreated node homes.
* Whoever holds the responder's static key can impersonate anyone to it (key-compromise
  impersonation, a property of KK's first message); the first message can be replayed, but
  without the initiator's ephemeral private key no one can finish the handshake it starts.
  Payloads of the first message are therefore kept empty by the channel.
* A message that does not authenticate (or brings a low-order ephemeral key) raises
  :class:`HandshakeFailed` and leaves the state as it was, so a forged message cannot spoil a
  handshake that a genuine message may still complete.
* Python cannot erase memory: "gone" means the ephemeral key objects are dropped at ``split``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PROTOCOL_NAME = b"Noise_KK_25519_AESGCM_SHA256"
DH_LEN = 32
HASH_LEN = 32
KEY_SIZE = 32
TAG_SIZE = 16
MESSAGE_SIZE = DH_LEN + TAG_SIZE  # a KK handshake message with an empty payload
MAX_NONCE = (1 << 64) - 1  # reserved by the specification: never used to encrypt


class HandshakeFailed(ValueError):
    """A handshake message did not authenticate, or is malformed; the state is unchanged."""


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The 32-byte public key of ``key``."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def dh(private_key: X25519PrivateKey, public_key: bytes | memoryview) -> bytes:
    """X25519; ``ValueError`` for a key of the wrong size or a low-order point (all-zero output)."""
    if len(public_key) != DH_LEN:
        raise ValueError(f"an X25519 public key is {DH_LEN} bytes, got {len(public_key)}")
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(bytes(public_key)))
    except ValueError as exc:
        raise ValueError("X25519 public key is a low-order point: no shared secret") from exc
    # The backend already refuses this; checked here so the guarantee does not rest on it.
    if shared == bytes(DH_LEN):
        raise ValueError("X25519 gave an all-zero shared secret: public key refused")
    return shared


def aead_nonce(n: int) -> bytes:
    """The AESGCM nonce of counter ``n``: 4 zero bytes, then ``n`` as 8 bytes big-endian."""
    return bytes(4) + n.to_bytes(8, "big")


def _hkdf2(chaining_key: bytes, input_key_material: bytes) -> tuple[bytes, bytes]:
    """Noise's ``HKDF(ck, ikm, 2)``: HMAC(ck, ikm) as the pseudo-random key, two blocks with
    empty info -- exactly RFC 5869 HKDF with ``salt = ck``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=2 * HASH_LEN, salt=chaining_key, info=b"")
    output = hkdf.derive(input_key_material)
    return output[:HASH_LEN], output[HASH_LEN:]


class CipherState:
    """A key and the counter ``n`` of the next nonce (section 5.1). ``n`` advances on every
    encryption and on every *successful* decryption only."""

    def __init__(self, key: bytes | None = None, n: int = 0) -> None:
        if key is not None and len(key) != KEY_SIZE:
            raise ValueError(f"a cipher key is {KEY_SIZE} bytes, got {len(key)}")
        self._key = key
        self._aead = None if key is None else AESGCM(key)
        self.n = n

    def has_key(self) -> bool:
        return self._aead is not None

    def copy(self) -> CipherState:
        return CipherState(self._key, self.n)

    def encrypt_with_ad(self, ad: bytes | memoryview, plaintext: bytes | memoryview) -> bytes:
        if self._aead is None:
            return bytes(plaintext)
        self._check_nonce()
        ciphertext = self._aead.encrypt(aead_nonce(self.n), plaintext, ad)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes | memoryview, ciphertext: bytes | memoryview) -> bytes:
        """The plaintext; ``InvalidTag`` (``n`` unchanged) when it does not authenticate."""
        if self._aead is None:
            return bytes(ciphertext)
        self._check_nonce()
        plaintext = self._aead.decrypt(aead_nonce(self.n), ciphertext, ad)
        self.n += 1
        return plaintext

    def _check_nonce(self) -> None:
        if self.n >= MAX_NONCE:
            raise OverflowError("the cipher's nonces are used up: a new handshake is needed")


@dataclass(slots=True)
class SymmetricState:
    """The chaining key, the handshake hash and the handshake's cipher (section 5.2)."""

    ck: bytes = field(repr=False)
    h: bytes
    cipher: CipherState = field(default_factory=CipherState, repr=False)

    @classmethod
    def initialize(cls, protocol_name: bytes) -> SymmetricState:
        if len(protocol_name) <= HASH_LEN:
            h = protocol_name.ljust(HASH_LEN, b"\x00")
        else:
            h = hashlib.sha256(protocol_name).digest()
        return cls(ck=h, h=h)

    def copy(self) -> SymmetricState:
        return SymmetricState(self.ck, self.h, self.cipher.copy())

    def mix_key(self, input_key_material: bytes) -> None:
        self.ck, temp_key = _hkdf2(self.ck, input_key_material)
        self.cipher = CipherState(temp_key)

    def mix_hash(self, data: bytes | memoryview) -> None:
        self.h = hashlib.sha256(self.h + bytes(data)).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes | memoryview) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        first, second = _hkdf2(self.ck, b"")
        return CipherState(first), CipherState(second)


@dataclass(frozen=True, slots=True)
class TransportCiphers:
    """The outcome of a handshake: ``send`` seals our transport messages, ``recv`` opens the
    peer's; ``handshake_hash`` identifies the session (equal on both ends)."""

    send: CipherState = field(repr=False)
    recv: CipherState = field(repr=False)
    handshake_hash: bytes


class HandshakeState:
    """One end of a Noise_KK_25519_AESGCM_SHA256 handshake (section 5.3, KK only).

    The initiator writes message 1 and reads message 2; the responder reads 1 and writes 2;
    then :meth:`split` gives the transport ciphers. ``ephemeral`` is for known-answer tests
    only: left out, a fresh key is generated from the OS's randomness when it is needed.
    """

    def __init__(
        self,
        *,
        initiator: bool,
        static_key: X25519PrivateKey,
        remote_static: bytes,
        prologue: bytes,
        ephemeral: X25519PrivateKey | None = None,
    ) -> None:
        if len(remote_static) != DH_LEN:
            raise ValueError(f"remote static key must be {DH_LEN} bytes, got {len(remote_static)}")
        dh(static_key, remote_static)  # refuse a low-order remote static key up front
        self.initiator = initiator
        self._s = static_key
        self._rs = bytes(remote_static)
        self._e = ephemeral
        self._re: bytes | None = None
        self._step = 0  # messages done
        self._symmetric = SymmetricState.initialize(PROTOCOL_NAME)
        self._symmetric.mix_hash(prologue)
        ours = public_bytes(static_key)
        initiator_static, responder_static = (ours, self._rs) if initiator else (self._rs, ours)
        self._symmetric.mix_hash(initiator_static)  # pre-message  -> s
        self._symmetric.mix_hash(responder_static)  # pre-message  <- s

    @property
    def complete(self) -> bool:
        return self._step == 2

    @property
    def writes_next(self) -> bool:
        """Whether the next handshake message is ours to write."""
        return not self.complete and (self._step == 0) == self.initiator

    def write_message(self, payload: bytes = b"") -> bytes:
        """Our next handshake message: ``e`` and the encrypted ``payload``."""
        if not self.writes_next:
            raise RuntimeError("it is not our turn to write a handshake message")
        if self._e is None:
            self._e = X25519PrivateKey.generate()
        state = self._symmetric
        ephemeral = public_bytes(self._e)
        state.mix_hash(ephemeral)
        if self.initiator:  # -> e, es, ss
            state.mix_key(dh(self._e, self._rs))
            state.mix_key(dh(self._s, self._rs))
        else:  # <- e, ee, se
            assert self._re is not None  # read in message 1
            state.mix_key(dh(self._e, self._re))
            state.mix_key(dh(self._e, self._rs))
        message = ephemeral + state.encrypt_and_hash(payload)
        self._step += 1
        return message

    def read_message(self, message: bytes | memoryview) -> bytes:
        """The payload of the peer's next handshake message; :class:`HandshakeFailed`, with
        nothing changed, if it is malformed or does not authenticate."""
        if self.complete or self.writes_next:
            raise RuntimeError("no handshake message from the peer is due")
        if len(message) < DH_LEN + TAG_SIZE:
            raise HandshakeFailed(
                f"a handshake message is at least {DH_LEN + TAG_SIZE} bytes, got {len(message)}"
            )
        state = self._symmetric.copy()
        remote_ephemeral = bytes(message[:DH_LEN])
        state.mix_hash(remote_ephemeral)
        try:
            if self.initiator:  # <- e, ee, se
                assert self._e is not None  # generated in message 1
                state.mix_key(dh(self._e, remote_ephemeral))
                state.mix_key(dh(self._s, remote_ephemeral))
            else:  # -> e, es, ss
                state.mix_key(dh(self._s, remote_ephemeral))
                state.mix_key(dh(self._s, self._rs))
            payload = state.decrypt_and_hash(message[DH_LEN:])
        except ValueError as exc:
            raise HandshakeFailed(f"bad ephemeral key: {exc}") from exc
        except InvalidTag as exc:
            raise HandshakeFailed("handshake message failed authentication") from exc
        self._symmetric = state
        self._re = remote_ephemeral
        self._step += 1
        return payload

    def split(self) -> TransportCiphers:
        """The transport ciphers; the ephemeral keys are dropped (forward secrecy)."""
        if not self.complete:
            raise RuntimeError("the handshake is not complete")
        initiator_to_responder, responder_to_initiator = self._symmetric.split()
        self._e = None
        self._re = None
        if self.initiator:
            send, recv = initiator_to_responder, responder_to_initiator
        else:
            send, recv = responder_to_initiator, initiator_to_responder
        return TransportCiphers(send=send, recv=recv, handshake_hash=self._symmetric.h)
