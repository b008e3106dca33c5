"""Known-answer vectors of the channel's wire format (``vectors/channel_kk_v2.json``), for other
implementations: with the static and ephemeral keys fixed, every frame of a short conversation
-- the handshake, a message cut into chunks, an empty message, a close -- byte for byte. See
``docs/peer-channel.md``."""

from __future__ import annotations

import json
import queue
import threading
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privledger.node.frames import FLAG_CLOSE, FLAG_HELLO, FLAG_LAST, HEADER_SIZE, FrameHeader
from privledger.node.noise import HandshakeState, public_bytes
from privledger.node.transport import MemoryWire, SecureChannel, channel_prologue

VECTORS = Path(__file__).parent / "vectors" / "channel_kk_v2.json"


def load() -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(VECTORS.read_text())
    return vector


def key(hex_key: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(hex_key))


def ends(vector: dict[str, Any]) -> tuple[SecureChannel, SecureChannel, queue.Queue[bytes]]:
    """A's and B's ends with the vector's keys; every frame either sends lands in one queue,
    in the order sent, and is then delivered to the other end."""
    a_org, b_org, task = vector["org_a"], vector["org_b"], vector["task_id"]
    prologue = channel_prologue(task, a_org, b_org)
    assert prologue.hex() == vector["prologue"]
    a_static, b_static = key(vector["a_static"]), key(vector["b_static"])
    wire: queue.Queue[bytes] = queue.Queue()
    a_in: queue.Queue[bytes] = queue.Queue()
    b_in: queue.Queue[bytes] = queue.Queue()

    class Tapped(MemoryWire):
        def send_frame(self, frame: bytes) -> None:
            wire.put(frame)
            super().send_frame(frame)

    def channel(
        me: int,
        peer: int,
        ours: X25519PrivateKey,
        theirs: X25519PrivateKey,
        ephemeral: str,
        inbox: queue.Queue[bytes],
        outbox: queue.Queue[bytes],
    ) -> SecureChannel:
        handshake = partial(
            HandshakeState,
            initiator=me < peer,
            static_key=ours,
            remote_static=public_bytes(theirs),
            prologue=prologue,
            ephemeral=key(ephemeral),
        )
        return SecureChannel(
            wire=Tapped(inbox=inbox, outbox=outbox),
            handshake=handshake,
            task_id=task,
            our_org=me,
            peer_org=peer,
            chunk_size=vector["chunk_size"],
        )

    a = channel(a_org, b_org, a_static, b_static, vector["a_ephemeral"], a_in, b_in)
    b = channel(b_org, a_org, b_static, a_static, vector["b_ephemeral"], b_in, a_in)
    return a, b, wire


def converse(vector: dict[str, Any]) -> tuple[list[bytes], bytes | None]:
    """The frames of the vector's conversation as our channel writes them."""
    a, b, wire = ends(vector)
    a.greet()
    b.greet()
    responder = threading.Thread(target=b.wait_for_peer, args=(5,))
    responder.start()
    a.wait_for_peer(5)
    responder.join(5)
    senders = {"a": (a, b), "b": (b, a)}
    for message in vector["messages"]:
        sender, receiver = senders[message["from"]]
        sender.send(bytes.fromhex(message["payload"]))
        assert receiver.recv(timeout=1).hex() == message["payload"]
    a.close()
    return [wire.get_nowait() for _ in range(wire.qsize())], a.handshake_hash


def test_the_channel_writes_the_vector_frames() -> None:
    vector = load()
    frames, handshake_hash = converse(vector)
    assert [frame.hex() for frame in frames] == [frame["frame"] for frame in vector["frames"]]
    assert handshake_hash is not None and handshake_hash.hex() == vector["handshake_hash"]


def test_vector_frames_are_described_by_their_fields() -> None:
    """Each frame's listed fields are its header (a reader's check of the documented layout)."""
    vector = load()
    for frame in vector["frames"]:
        raw = bytes.fromhex(frame["frame"])
        assert raw[0] == 2
        assert int.from_bytes(raw[1:33], "big") == vector["task_id"]
        assert int.from_bytes(raw[33:41], "big") == frame["sender"]
        assert int.from_bytes(raw[41:49], "big") == frame["receiver"]
        assert int.from_bytes(raw[49:57], "big") == frame["seq"]
        assert raw[57] == frame["flags"]


def test_the_vector_frames_decode_by_the_documented_rules() -> None:
    """A reader built from the Noise handshake and the documented framing only (no
    :class:`SecureChannel`) finds the handshake, the key confirmation and the messages."""
    vector = load()
    a_org, b_org = vector["org_a"], vector["org_b"]
    a_static, b_static = key(vector["a_static"]), key(vector["b_static"])
    prologue = bytes.fromhex(vector["prologue"])
    initiator = HandshakeState(
        initiator=True,
        static_key=a_static,
        remote_static=public_bytes(b_static),
        prologue=prologue,
        ephemeral=key(vector["a_ephemeral"]),
    )
    responder = HandshakeState(
        initiator=False,
        static_key=b_static,
        remote_static=public_bytes(a_static),
        prologue=prologue,
        ephemeral=key(vector["b_ephemeral"]),
    )
    hello, answer, *transport = (bytes.fromhex(frame["frame"]) for frame in vector["frames"])
    assert hello[HEADER_SIZE:] == initiator.write_message()
    responder.read_message(hello[HEADER_SIZE:])
    assert answer[HEADER_SIZE:] == responder.write_message()
    initiator.read_message(answer[HEADER_SIZE:])
    receivers = {b_org: responder.split().recv, a_org: initiator.split().recv}
    sides = {a_org: "a", b_org: "b"}
    partial_messages: dict[str, bytes] = {"a": b"", "b": b""}
    received: list[dict[str, str]] = []
    closed = confirmed = False
    for frame in transport:
        header = FrameHeader.parse(frame)
        cipher = receivers[header.receiver_org]
        assert cipher.n == header.seq - 1
        chunk = cipher.decrypt_with_ad(frame[:HEADER_SIZE], frame[HEADER_SIZE:])
        side = sides[header.sender_org]
        if header.flags == FLAG_HELLO:
            assert (side, header.seq, chunk) == ("a", 1, b"")
            confirmed = True
        elif header.flags == FLAG_CLOSE:
            closed = True
        else:
            partial_messages[side] += chunk
            if header.flags & FLAG_LAST:
                received.append({"from": side, "payload": partial_messages[side].hex()})
                partial_messages[side] = b""
    assert confirmed and closed
    assert received == vector["messages"]
