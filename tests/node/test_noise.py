"""The Noise_KK_25519_AESGCM_SHA256 handshake against the published test vectors, and its
behaviour on bad messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privledger.node.noise import (
    MESSAGE_SIZE,
    PROTOCOL_NAME,
    CipherState,
    HandshakeFailed,
    HandshakeState,
    public_bytes,
)

VECTORS = Path(__file__).parent / "vectors" / "noise_kk_25519_aesgcm_sha256.json"
PROLOGUE = b"test prologue"


def published() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS.read_text())["vectors"]
    return vectors


def private(vector: dict[str, Any], name: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(vector[name]))


def ends(vector: dict[str, Any]) -> tuple[HandshakeState, HandshakeState]:
    initiator = HandshakeState(
        initiator=True,
        static_key=private(vector, "init_static"),
        remote_static=bytes.fromhex(vector["init_remote_static"]),
        prologue=bytes.fromhex(vector["init_prologue"]),
        ephemeral=private(vector, "init_ephemeral"),
    )
    responder = HandshakeState(
        initiator=False,
        static_key=private(vector, "resp_static"),
        remote_static=bytes.fromhex(vector["resp_remote_static"]),
        prologue=bytes.fromhex(vector["resp_prologue"]),
        ephemeral=private(vector, "resp_ephemeral"),
    )
    return initiator, responder


def test_the_fixture_holds_the_kk_vectors_of_both_sources() -> None:
    vectors = published()
    assert {vector["protocol_name"] for vector in vectors} == {PROTOCOL_NAME.decode()}
    assert {vector["source"] for vector in vectors} == {"cacophony", "snow"}


@pytest.mark.parametrize("vector", published(), ids=lambda vector: vector["source"])
def test_published_vectors(vector: dict[str, Any]) -> None:
    """Handshake messages, handshake hash and transport messages byte for byte."""
    initiator, responder = ends(vector)
    first, second, *transport = vector["messages"]
    message = initiator.write_message(bytes.fromhex(first["payload"]))
    assert message.hex() == first["ciphertext"]
    assert responder.read_message(message).hex() == first["payload"]
    message = responder.write_message(bytes.fromhex(second["payload"]))
    assert message.hex() == second["ciphertext"]
    assert initiator.read_message(message).hex() == second["payload"]
    at_initiator, at_responder = initiator.split(), responder.split()
    if "handshake_hash" in vector:
        assert at_initiator.handshake_hash.hex() == vector["handshake_hash"]
    assert at_initiator.handshake_hash == at_responder.handshake_hash
    for index, expected in enumerate(transport):  # alternating, from the initiator
        sender, receiver = (
            (at_initiator, at_responder) if index % 2 == 0 else (at_responder, at_initiator)
        )
        ciphertext = sender.send.encrypt_with_ad(b"", bytes.fromhex(expected["payload"]))
        assert ciphertext.hex() == expected["ciphertext"]
        assert receiver.recv.decrypt_with_ad(b"", ciphertext).hex() == expected["payload"]


def fresh_pair(
    prologue: bytes = PROLOGUE,
    responder_prologue: bytes | None = None,
    keys: tuple[X25519PrivateKey, X25519PrivateKey] | None = None,
) -> tuple[HandshakeState, HandshakeState]:
    initiator_key, responder_key = keys or (
        X25519PrivateKey.generate(),
        X25519PrivateKey.generate(),
    )
    initiator = HandshakeState(
        initiator=True,
        static_key=initiator_key,
        remote_static=public_bytes(responder_key),
        prologue=prologue,
    )
    responder = HandshakeState(
        initiator=False,
        static_key=responder_key,
        remote_static=public_bytes(initiator_key),
        prologue=prologue if responder_prologue is None else responder_prologue,
    )
    return initiator, responder


def test_a_bad_message_changes_nothing() -> None:
    """A forged, altered or low-order message is refused and the genuine one still completes."""
    initiator, responder = fresh_pair()
    genuine = initiator.write_message()
    assert len(genuine) == MESSAGE_SIZE
    altered = bytearray(genuine)
    altered[-1] ^= 1
    low_order = bytes(32) + genuine[32:]
    for bad, match in [
        (bytes(altered), "authentication"),
        (low_order, "low-order"),
        (genuine[:-1], "at least"),
        (X25519PrivateKey.generate().public_key().public_bytes_raw() + genuine[32:], "auth"),
    ]:
        with pytest.raises(HandshakeFailed, match=match):
            responder.read_message(bad)
    assert responder.read_message(genuine) == b""
    initiator.read_message(responder.write_message())
    assert initiator.split().handshake_hash == responder.split().handshake_hash


def test_a_prologue_or_static_key_mismatch_fails() -> None:
    initiator, _ = fresh_pair()
    _, stranger = fresh_pair()
    with pytest.raises(HandshakeFailed):
        stranger.read_message(initiator.write_message())
    initiator, other_task = fresh_pair(b"task 1", responder_prologue=b"task 2")
    with pytest.raises(HandshakeFailed):
        other_task.read_message(initiator.write_message())


def test_every_handshake_gives_new_keys() -> None:
    """Same static keys and prologue twice: fresh ephemeral keys give unrelated transport keys,
    so a sealed message differs under the same nonce."""
    keys = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    sealed = []
    for _ in range(2):
        initiator, responder = fresh_pair(keys=keys)
        responder.read_message(initiator.write_message())
        initiator.read_message(responder.write_message())
        sealed.append(initiator.split().send.encrypt_with_ad(b"", bytes(32)))
    assert sealed[0] != sealed[1]


def test_turns_and_nonce_exhaustion_are_enforced() -> None:
    initiator, responder = fresh_pair()
    with pytest.raises(RuntimeError, match="not our turn"):
        responder.write_message()
    with pytest.raises(RuntimeError, match="no handshake message"):
        initiator.read_message(bytes(MESSAGE_SIZE))
    with pytest.raises(RuntimeError, match="not complete"):
        initiator.split()
    cipher = CipherState(bytes(32), n=(1 << 64) - 1)
    with pytest.raises(OverflowError):
        cipher.encrypt_with_ad(b"", b"")
