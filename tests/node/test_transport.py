"""The peer channel: handshake, framing, tamper resistance, mailbox and HTTP wire."""

from __future__ import annotations

import asyncio
import queue
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from starlette.requests import Request
from starlette.responses import JSONResponse

from privledger.node.noise import HandshakeState, TransportCiphers, public_bytes
from privledger.node.transport import (
    DEFAULT_MAX_MESSAGE_SIZE,
    FLAG_CLOSE,
    FLAG_HELLO,
    FLAG_LAST,
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    STREAM_LENGTH,
    TAG_SIZE,
    VERSION,
    ChannelTampered,
    ForeignFrame,
    FrameHeader,
    FrameTooLarge,
    HttpWire,
    Mailbox,
    MailboxFull,
    MemoryWire,
    MessageTooLarge,
    NotExpected,
    PeerUnreachable,
    SecureChannel,
    Wire,
    channel_prologue,
    memory_wire_pair,
    open_channel,
    receive_stream,
)
from privledger.protocols.channel import (
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    channel_pair,
)

TASK = 7
ORG_A = 3
ORG_B = 11
CHUNK = 16


@dataclass(frozen=True)
class Org:
    org_id: int
    key: X25519PrivateKey

    @property
    def public(self) -> bytes:
        return public_bytes(self.key)


@pytest.fixture
def org_a() -> Org:
    return Org(ORG_A, X25519PrivateKey.generate())


@pytest.fixture
def org_b() -> Org:
    return Org(ORG_B, X25519PrivateKey.generate())


def end(me: Org, peer: Org, wire: Wire, *, task: int = TASK, **options: int) -> SecureChannel:
    return open_channel(
        task_id=task,
        our_org=me.org_id,
        peer_org=peer.org_id,
        our_key=me.key,
        peer_public_key=peer.public,
        wire=wire,
        **options,
    )


def meet(*channels: SecureChannel, timeout: float = 5) -> None:
    """Greet and wait on every end at once, as the ends' nodes do, each in its own process."""
    for channel in channels:
        channel.greet()
    waiters = [threading.Thread(target=c.wait_for_peer, args=(timeout,)) for c in channels]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join(timeout + 1)


def connected(org_a: Org, org_b: Org, **options: int) -> tuple[SecureChannel, SecureChannel]:
    wire_a, wire_b = memory_wire_pair()
    a, b = end(org_a, org_b, wire_a, **options), end(org_b, org_a, wire_b, **options)
    meet(a, b)
    return a, b


@dataclass
class Link:
    """A's end (genuine, handshaken) and B's end, with the test carrying A's frames to B by hand:
    ``sealed`` gives the frames A puts on the wire, ``feed`` hands frames to B."""

    sender: SecureChannel
    channel: SecureChannel  # B's end, under attack
    sent: queue.Queue[bytes]
    inbox: queue.Queue[bytes]
    opening: list[bytes]  # A's hello and key confirmation, as recorded on the wire
    back: queue.Queue[bytes]  # what B sends A after the handshake

    def sealed(self, *messages: bytes, close: bool = False) -> list[bytes]:
        for message in messages:
            self.sender.send(message)
        if close:
            self.sender.close()
        return [self.sent.get_nowait() for _ in range(self.sent.qsize())]

    def feed(self, *frames: bytes) -> None:
        for frame in frames:
            self.inbox.put(frame)


def link(
    org_a: Org, org_b: Org, *, receiver_limit: int = DEFAULT_MAX_MESSAGE_SIZE, **options: int
) -> Link:
    a_in: queue.Queue[bytes] = queue.Queue()
    a_out: queue.Queue[bytes] = queue.Queue()
    b_in: queue.Queue[bytes] = queue.Queue()
    a = end(org_a, org_b, MemoryWire(inbox=a_in, outbox=a_out), **options)
    b_wire = MemoryWire(inbox=b_in, outbox=a_in)
    b = end(org_b, org_a, b_wire, max_message_size=receiver_limit, **options)
    a.greet()
    b.greet()
    opening = [a_out.get_nowait()]  # A's hello
    b_in.put(opening[0])
    responder = threading.Thread(target=b.wait_for_peer, args=(5,))
    responder.start()
    a.wait_for_peer(5)  # reads B's answer, sends its key confirmation
    opening.append(a_out.get_nowait())
    b_in.put(opening[1])
    responder.join(5)
    assert b.handshake_hash == a.handshake_hash is not None
    return Link(a, b, a_out, b_in, opening, a_in)


@pytest.fixture
def receiver(org_a: Org, org_b: Org) -> Link:
    return link(org_a, org_b, chunk_size=CHUNK)


@dataclass
class ByHand:
    """A's end written from the documented format (noise module, frame header, nothing of
    :class:`SecureChannel`), handshaken with B's :class:`SecureChannel`."""

    channel: SecureChannel  # B's end
    inbox: queue.Queue[bytes]
    ciphers: TransportCiphers

    def seal(self, flags: int, chunk: bytes) -> bytes:
        seq = self.ciphers.send.n + 1
        header = FrameHeader(TASK, ORG_A, ORG_B, seq, flags).pack()
        return header + self.ciphers.send.encrypt_with_ad(header, chunk)

    def feed(self, *frames: bytes) -> None:
        for frame in frames:
            self.inbox.put(frame)


def by_hand(org_a: Org, org_b: Org) -> ByHand:
    inbox: queue.Queue[bytes] = queue.Queue()
    answers: queue.Queue[bytes] = queue.Queue()
    b = end(org_b, org_a, MemoryWire(inbox=inbox, outbox=answers))
    handshake = HandshakeState(
        initiator=True,
        static_key=org_a.key,
        remote_static=org_b.public,
        prologue=channel_prologue(TASK, ORG_A, ORG_B),
    )
    hello = FrameHeader(TASK, ORG_A, ORG_B, 0, FLAG_HELLO).pack()
    inbox.put(hello + handshake.write_message())
    b.greet()
    responder = threading.Thread(target=b.wait_for_peer, args=(5,))
    responder.start()
    answer = answers.get(timeout=5)
    assert FrameHeader.parse(answer) == FrameHeader(TASK, ORG_B, ORG_A, 0, FLAG_HELLO)
    handshake.read_message(answer[HEADER_SIZE:])
    hand = ByHand(b, inbox, handshake.split())
    hand.feed(hand.seal(FLAG_HELLO, b""))  # the key confirmation
    responder.join(5)
    assert b.handshake_hash == hand.ciphers.handshake_hash
    return hand


def flip(frame: bytes, index: int) -> bytes:
    altered = bytearray(frame)
    altered[index] ^= 0x01
    return bytes(altered)


def assert_failed_closed(channel: SecureChannel) -> None:
    with pytest.raises(ChannelTampered, match="unusable"):
        channel.recv(timeout=1)
    with pytest.raises(ChannelTampered, match="unusable"):
        channel.send(b"reply")


# --- opening -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer_public_key", "match"),
    [(bytes(32), "low-order"), (b"\x01" + bytes(31), "low-order"), (bytes(31), "32 bytes")],
)
def test_bad_peer_keys_are_refused(org_a: Org, peer_public_key: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        open_channel(
            task_id=TASK,
            our_org=ORG_A,
            peer_org=ORG_B,
            our_key=org_a.key,
            peer_public_key=peer_public_key,
            wire=memory_wire_pair()[0],
        )


@pytest.mark.parametrize(
    ("task_id", "our_org", "peer_org", "match"),
    [
        (TASK, ORG_A, ORG_A, "two different"),
        (-1, ORG_A, ORG_B, "task_id"),
        (2**256, ORG_A, ORG_B, "task_id"),
        (TASK, 2**64, ORG_B, "our_org"),
    ],
)
def test_bad_ids_are_refused(
    org_a: Org, org_b: Org, task_id: int, our_org: int, peer_org: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        open_channel(
            task_id=task_id,
            our_org=our_org,
            peer_org=peer_org,
            our_key=org_a.key,
            peer_public_key=org_b.public,
            wire=memory_wire_pair()[0],
        )


def test_a_channel_written_from_the_docs_interoperates(org_a: Org, org_b: Org) -> None:
    """A's end built from the noise module and the header alone: the documented handshake,
    key confirmation and transport frames are what :class:`SecureChannel` speaks."""
    hand = by_hand(org_a, org_b)
    hand.feed(hand.seal(0, b"two "), hand.seal(FLAG_LAST, b"chunks"))
    assert hand.channel.recv(timeout=1) == b"two chunks"
    hand.channel.send(b"reply")


def test_messages_wait_for_the_handshake(org_a: Org, org_b: Org) -> None:
    a, b = (
        end(me, peer, wire)
        for me, peer, wire in zip((org_a, org_b), (org_b, org_a), memory_wire_pair(), strict=True)
    )
    for channel in (a, b):
        with pytest.raises(ChannelError, match="handshake is not complete"):
            channel.send(b"too early")
        with pytest.raises(ChannelError, match="handshake is not complete"):
            channel.recv(timeout=0)
        with pytest.raises(ChannelError, match="greet"):
            channel.wait_for_peer(timeout=0)
    a.greet()
    with pytest.raises(ChannelError, match="already greeted"):
        a.greet()


def test_the_responder_times_out_without_a_hello(org_a: Org, org_b: Org) -> None:
    _, b = (
        end(me, peer, wire)
        for me, peer, wire in zip((org_a, org_b), (org_b, org_a), memory_wire_pair(), strict=True)
    )
    b.greet()  # the responder sends nothing: its hello answers the initiator's
    with pytest.raises(ChannelTimeout):
        b.wait_for_peer(timeout=0.05)


def test_several_channels_of_a_node_greet_before_waiting(org_a: Org, org_b: Org) -> None:
    """Three parties, each greeting both peers and then waiting on each in turn, as the worker
    does (one process each): no channel waits on another."""
    org_c = Org(ORG_B + 1, X25519PrivateKey.generate())
    orgs = (org_a, org_b, org_c)
    ends: dict[tuple[int, int], SecureChannel] = {}
    for first in range(3):
        for second in range(first + 1, 3):
            wire_1, wire_2 = memory_wire_pair()
            ends[first, second] = end(orgs[first], orgs[second], wire_1)
            ends[second, first] = end(orgs[second], orgs[first], wire_2)

    def node(me: int) -> None:
        mine = [ends[me, peer] for peer in range(3) if peer != me]
        for channel in mine:
            channel.greet()
        for channel in mine:
            channel.wait_for_peer(timeout=5)

    nodes = [threading.Thread(target=node, args=(me,)) for me in (2, 1, 0)]
    for thread in nodes:
        thread.start()
    for thread in nodes:
        thread.join(6)
    for (me, peer), channel in ends.items():
        assert channel.handshake_hash == ends[peer, me].handshake_hash is not None


# --- round trips ---------------------------------------------------------------------------------


def test_small_messages_round_trip_with_equal_transcripts(org_a: Org, org_b: Org) -> None:
    a, b = connected(org_a, org_b)
    assert (a.side, b.side) == ("a", "b")
    a.send(b"hello")
    assert b.recv(timeout=1) == b"hello"
    b.send(b"")
    assert a.recv(timeout=1) == b""
    assert a.transcript_hash == b.transcript_hash != bytes(32)


def test_multi_chunk_messages_round_trip(org_a: Org, org_b: Org) -> None:
    messages = [bytes(range(n)) for n in (1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 100)]
    a, b = connected(org_a, org_b, chunk_size=CHUNK)
    plain_a, plain_b = channel_pair()
    for index, message in enumerate(messages):
        sender, recipient = (a, b) if index % 2 == 0 else (b, a)
        plain_sender, plain_recipient = (plain_a, plain_b) if index % 2 == 0 else (plain_b, plain_a)
        sender.send(message)
        assert recipient.recv(timeout=1) == message
        plain_sender.send(message)
        plain_recipient.recv(timeout=1)
    assert a.transcript_hash == b.transcript_hash == plain_a.transcript_hash


def test_a_message_of_several_chunks_is_assembled_in_place(org_a: Org, org_b: Org) -> None:
    """``recv_buffer`` hands over the buffer the chunks were assembled in (no second copy);
    ``recv`` still gives ``bytes``; a one-chunk message comes as the decrypted ``bytes``."""
    a, b = connected(org_a, org_b, chunk_size=CHUNK)
    large, small = bytes(range(256)) * (3 * CHUNK // 256 + 1), b"x" * (CHUNK - 1)
    for message in (large, small):
        a.send(message)
        a.send(message)
        buffer = b.recv_buffer(timeout=1)
        assert buffer == message and type(buffer) is (bytearray if message is large else bytes)
        received = b.recv(timeout=1)
        assert type(received) is bytes and received == message
    assert a.transcript_hash == b.transcript_hash


def test_side_a_is_the_lower_org_id(org_a: Org, org_b: Org) -> None:
    b, a = connected(org_b, org_a)
    assert (a.side, b.side) == ("a", "b")


def test_frames_have_the_documented_layout(receiver: Link) -> None:
    frames = receiver.sealed(bytes(range(40)))
    assert [len(frame) for frame in frames] == [HEADER_SIZE + n + TAG_SIZE for n in (16, 16, 8)]
    for seq, frame in enumerate(frames, start=2):  # after the hello (0) and confirmation (1)
        flags = FLAG_LAST if seq == 4 else 0
        assert frame[:HEADER_SIZE] == (
            b"\x02"
            + TASK.to_bytes(32, "big")
            + ORG_A.to_bytes(8, "big")
            + ORG_B.to_bytes(8, "big")
            + seq.to_bytes(8, "big")
            + bytes([flags])
        )
    receiver.feed(*frames)
    assert receiver.channel.recv(timeout=1) == bytes(range(40))


def test_close_reaches_the_peer_and_is_idempotent(org_a: Org, org_b: Org) -> None:
    a, b = connected(org_a, org_b)
    a.send(b"last words")
    a.close()
    a.close()
    assert b.recv(timeout=1) == b"last words"
    with pytest.raises(ChannelClosed, match="peer closed"):
        b.recv(timeout=1)
    with pytest.raises(ChannelClosed, match="peer closed"):
        b.recv(timeout=1)
    with pytest.raises(ChannelClosed):
        a.send(b"more")


def test_a_timeout_keeps_a_partly_received_message(receiver: Link) -> None:
    *head, tail = receiver.sealed(bytes(3 * CHUNK))
    receiver.feed(*head)
    with pytest.raises(ChannelTimeout):
        receiver.channel.recv(timeout=0.05)
    receiver.feed(tail)
    assert receiver.channel.recv(timeout=1) == bytes(3 * CHUNK)


def test_message_size_limit_on_both_ends(org_a: Org, org_b: Org) -> None:
    a, b = connected(org_a, org_b, chunk_size=CHUNK, max_message_size=2 * CHUNK)
    with pytest.raises(MessageTooLarge):
        a.send(bytes(2 * CHUNK + 1))
    a.send(bytes(2 * CHUNK))  # a refused send leaves the channel usable
    assert b.recv(timeout=1) == bytes(2 * CHUNK)

    small = link(org_a, org_b, chunk_size=CHUNK, receiver_limit=2 * CHUNK)
    small.feed(*small.sealed(bytes(3 * CHUNK)))
    with pytest.raises(MessageTooLarge, match="exceeds"):
        small.channel.recv(timeout=1)
    with pytest.raises(MessageTooLarge, match="unusable"):
        small.channel.recv(timeout=1)


@pytest.mark.parametrize("chunk_size", [0, MAX_FRAME_SIZE])
def test_bad_chunk_size_is_refused(org_a: Org, org_b: Org, chunk_size: int) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        connected(org_a, org_b, chunk_size=chunk_size)


# --- tampering -----------------------------------------------------------------------------------


def assert_dropped(receiver: Link, genuine: bytes, message: bytes, dropped: int = 1) -> None:
    """The frames fed so far were dropped, not fatal: the genuine frame still gets through."""
    receiver.feed(genuine)
    assert receiver.channel.recv(timeout=1) == message
    assert receiver.channel.dropped == dropped
    receiver.channel.send(b"reply")  # the channel is still usable both ways


def test_forged_ciphertext_is_dropped(receiver: Link) -> None:
    frames = receiver.sealed(b"pay 10 to org 11")
    receiver.feed(flip(frames[0], HEADER_SIZE + 3))
    with pytest.raises(ChannelTimeout):
        receiver.channel.recv(timeout=0.2)
    assert_dropped(receiver, frames[0], b"pay 10 to org 11")


def test_forged_frame_from_scratch_is_dropped(receiver: Link) -> None:
    header = FrameHeader(TASK, ORG_A, ORG_B, 2, FLAG_LAST).pack()
    receiver.feed(header + bytes(40), b"garbage")
    assert_dropped(receiver, receiver.sealed(b"real")[0], b"real", dropped=2)


@pytest.mark.parametrize(
    "index",
    [
        0,  # version
        32,  # task id
        40,  # sender
        48,  # receiver
        HEADER_SIZE - 2,  # seq
        HEADER_SIZE - 1,  # flags: last chunk -> not last
    ],
)
def test_altered_header_is_dropped(receiver: Link, index: int) -> None:
    frames = receiver.sealed(b"hello")
    receiver.feed(flip(frames[0], index))
    assert_dropped(receiver, frames[0], b"hello")


def test_replayed_frame_is_dropped(receiver: Link) -> None:
    first, second = receiver.sealed(b"one", b"two")
    receiver.feed(first, first)
    assert receiver.channel.recv(timeout=1) == b"one"
    assert_dropped(receiver, second, b"two")


def test_reordered_frames_are_dropped(receiver: Link) -> None:
    first, second = receiver.sealed(b"one", b"two")
    receiver.feed(second, first)  # the early second frame is dropped, the first accepted
    assert receiver.channel.recv(timeout=1) == b"one"
    assert_dropped(receiver, second, b"two")


def test_truncated_frame_is_dropped(receiver: Link) -> None:
    (frame,) = receiver.sealed(b"hello")
    receiver.feed(frame[:-1], frame[: HEADER_SIZE + 3])
    assert_dropped(receiver, frame, b"hello", dropped=2)


def test_message_missing_its_last_chunk_never_completes(receiver: Link) -> None:
    first, second, _lost, next_message = receiver.sealed(bytes(3 * CHUNK), b"next")
    receiver.feed(first, second, next_message)
    with pytest.raises(ChannelTimeout):  # the lost frame never comes: nothing is delivered
        receiver.channel.recv(timeout=0.3)
    assert receiver.channel.dropped == 1


def test_close_inside_a_message_is_rejected(org_a: Org, org_b: Org) -> None:
    hand = by_hand(org_a, org_b)
    hand.feed(hand.seal(0, b"first half"), hand.seal(FLAG_CLOSE, b""))
    with pytest.raises(ChannelTampered, match="inside a message"):
        hand.channel.recv(timeout=1)
    assert_failed_closed(hand.channel)


def test_a_hello_inside_the_transport_is_rejected(org_a: Org, org_b: Org) -> None:
    hand = by_hand(org_a, org_b)
    hand.feed(hand.seal(FLAG_HELLO, b""))
    with pytest.raises(ChannelTampered, match="hello inside the transport"):
        hand.channel.recv(timeout=1)
    assert_failed_closed(hand.channel)


def test_frames_of_another_task_do_not_open(receiver: Link, org_a: Org, org_b: Org) -> None:
    other_task = link(org_a, org_b, task=TASK + 1)
    (frame,) = other_task.sealed(b"hello")
    rerouted = FrameHeader(TASK, ORG_A, ORG_B, 2, FLAG_LAST).pack() + frame[HEADER_SIZE:]
    receiver.feed(rerouted)
    assert_dropped(receiver, receiver.sealed(b"mine")[0], b"mine")


# --- mailbox -------------------------------------------------------------------------------------


def frame_for(task: int = TASK, sender: int = ORG_A, receiver: int = ORG_B, size: int = 0) -> bytes:
    return FrameHeader(task, sender, receiver, 0, FLAG_LAST).pack() + bytes(TAG_SIZE + size)


def opened(**limits: int) -> Mailbox:
    """A mailbox whose node has channels open for TASK .. TASK + 2 with ORG_A, and for TASK
    with org ORG_B + 1."""
    mailbox = Mailbox(**limits)
    for task in (TASK, TASK + 1, TASK + 2):
        mailbox.expect(task, ORG_A)
    mailbox.expect(TASK, ORG_B + 1)
    return mailbox


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (b"garbage", "too short"),
        (frame_for()[: HEADER_SIZE + TAG_SIZE - 1], "too short"),
        (bytes([VERSION + 1]) + frame_for()[1:], f"version {VERSION + 1}"),
        (frame_for()[: HEADER_SIZE - 1] + b"\x03" + bytes(TAG_SIZE), "flags"),
        (frame_for(sender=ORG_B), "same organisation"),
        (frame_for(size=MAX_FRAME_SIZE), "too large"),
    ],
)
def test_mailbox_rejects_malformed_frames(frame: bytes, match: str) -> None:
    mailbox = opened()
    with pytest.raises(ValueError, match=match):
        mailbox.deliver(frame)


def test_mailbox_refuses_frames_for_another_org() -> None:
    with pytest.raises(ValueError, match="this node is 99"):
        Mailbox(local_org=99).deliver(frame_for())


def test_mailbox_routes_frames_and_times_out() -> None:
    mailbox = opened()
    first, second, elsewhere = frame_for(size=1), frame_for(size=2), frame_for(task=TASK + 1)
    for frame in (first, elsewhere, second):
        mailbox.deliver(frame)
    assert mailbox.take(TASK, ORG_A, ORG_B, timeout=0) == first
    assert mailbox.take(TASK, ORG_A, ORG_B, timeout=0) == second
    with pytest.raises(ChannelTimeout):
        mailbox.take(TASK, ORG_A, ORG_B, timeout=0.05)
    with pytest.raises(ChannelTimeout):
        mailbox.take(TASK + 1, ORG_B, ORG_A, timeout=0)


def test_mailbox_take_waits_for_delivery() -> None:
    mailbox = opened()
    timer = threading.Timer(0.05, mailbox.deliver, args=(frame_for(),))
    timer.start()
    try:
        assert mailbox.take(TASK, ORG_A, ORG_B, timeout=5) == frame_for()
    finally:
        timer.join()


def test_mailbox_full_queue_is_refused() -> None:
    mailbox = opened(max_frames_per_queue=2)
    mailbox.deliver(frame_for())
    mailbox.deliver(frame_for())
    with pytest.raises(MailboxFull, match="2 frames already wait"):
        mailbox.deliver(frame_for())
    mailbox.deliver(frame_for(sender=ORG_B + 1))  # other queues are not affected
    mailbox.take(TASK, ORG_A, ORG_B, timeout=0)
    mailbox.deliver(frame_for())


def test_mailbox_total_size_is_bounded() -> None:
    big = frame_for(size=MAX_FRAME_SIZE - HEADER_SIZE - TAG_SIZE)
    mailbox = opened(max_total_bytes=2 * len(big), max_sender_bytes=2 * len(big))
    mailbox.deliver(big)
    mailbox.deliver(frame_for(task=TASK + 1, size=len(big) - HEADER_SIZE - TAG_SIZE))
    with pytest.raises(MailboxFull, match="limit"):
        mailbox.deliver(frame_for(task=TASK + 2))
    mailbox.discard(TASK)
    mailbox.deliver(frame_for(task=TASK + 2))


def test_one_sender_holds_at_most_its_share_of_the_mailbox() -> None:
    """Junk a participant posts on the route of a task this node does not read yet holds at most
    ``max_sender_bytes``: another peer's frames still find room, and taking or discarding frees
    the sender's share."""
    big = frame_for(size=MAX_FRAME_SIZE - HEADER_SIZE - TAG_SIZE)
    mailbox = opened(max_total_bytes=2 * len(big))  # a sender's share: half, one big frame
    mailbox.deliver(big)
    with pytest.raises(MailboxFull, match=f"from org {ORG_A}"):
        mailbox.deliver(frame_for(task=TASK + 1))
    other = frame_for(sender=ORG_B + 1, size=len(big) - HEADER_SIZE - TAG_SIZE)
    mailbox.deliver(other)
    assert mailbox.take(TASK, ORG_A, ORG_B, timeout=0) == big
    mailbox.deliver(frame_for(task=TASK + 1))
    mailbox.discard(TASK + 1)
    mailbox.deliver(big)
    with pytest.raises(ValueError, match="at most max_total_bytes"):
        Mailbox(max_total_bytes=MAX_FRAME_SIZE, max_sender_bytes=2 * MAX_FRAME_SIZE)


def test_mailbox_discard_drops_a_finished_task() -> None:
    mailbox = opened(max_frames_per_queue=1)
    mailbox.deliver(frame_for())
    mailbox.deliver(frame_for(task=TASK + 1))
    mailbox.discard(TASK)
    mailbox.deliver(frame_for())  # late frame of the finished task: dropped, not queued
    with pytest.raises(ChannelClosed):
        mailbox.take(TASK, ORG_A, ORG_B, timeout=0)
    assert mailbox.take(TASK + 1, ORG_A, ORG_B, timeout=0) == frame_for(task=TASK + 1)


def test_mailbox_discard_wakes_whoever_waits_for_the_task() -> None:
    mailbox = opened()
    timer = threading.Timer(0.05, mailbox.discard, args=(TASK,))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(ChannelClosed, match=f"task {TASK} was closed"):
            mailbox.take(TASK, ORG_A, ORG_B, timeout=5)
    finally:
        timer.join()
    assert time.monotonic() - started < 2


def test_mailbox_remembers_only_recent_finished_tasks() -> None:
    mailbox = opened(finished_tasks_kept=1)
    mailbox.discard(TASK)
    mailbox.discard(TASK + 1)
    mailbox.expect(TASK, ORG_A)  # TASK is forgotten: a channel may be opened for it again
    mailbox.expect(TASK + 1, ORG_A)  # still remembered: no channel for it
    mailbox.deliver(frame_for())
    mailbox.deliver(frame_for(task=TASK + 1))  # dropped
    assert mailbox.take(TASK, ORG_A, ORG_B, timeout=0) == frame_for()
    with pytest.raises(ChannelClosed):
        mailbox.take(TASK + 1, ORG_A, ORG_B, timeout=0)


def test_mailbox_keeps_nothing_for_a_route_no_channel_expects() -> None:
    """A frame for a task this node does not run with that sender (an outsider's, queued ahead
    of task ids it guesses, say) is refused and nothing of it is kept; once the node opens its
    end the route takes frames, until the task is discarded."""
    mailbox = Mailbox(max_total_bytes=MAX_FRAME_SIZE)
    junk = frame_for(size=MAX_FRAME_SIZE - HEADER_SIZE - TAG_SIZE)
    for _ in range(3):  # far more than the mailbox could hold
        with pytest.raises(NotExpected, match=f"no channel for task {TASK} with org {ORG_A}"):
            mailbox.deliver(junk)
    mailbox.expect(TASK, ORG_A)
    with pytest.raises(NotExpected):
        mailbox.deliver(frame_for(sender=ORG_A + 7))  # the task, but not from its peer
    mailbox.deliver(frame_for())  # room for it: the refused frames took none
    assert mailbox.take(TASK, ORG_A, ORG_B, timeout=0) == frame_for()
    mailbox.discard(TASK)
    mailbox.deliver(frame_for())  # after the task: dropped
    with pytest.raises(ChannelClosed):
        mailbox.take(TASK, ORG_A, ORG_B, timeout=0)


def test_receive_stream_waits_for_the_channel_to_open() -> None:
    """A peer that opened its end first: its frames wait (unread, in the connection) until this
    node's channel expects them; a route that never opens is a 429 (MailboxFull)."""
    mailbox = Mailbox()
    two = stream_of(frame_for(), frame_for(size=3))

    async def opened_later() -> int:
        asyncio.get_running_loop().call_later(0.1, mailbox.expect, TASK, ORG_A)
        return await receive_stream(
            _chunks(two, 64), mailbox, sender_org=ORG_A, max_frame_bytes=1024, full_wait_s=5
        )

    assert asyncio.run(opened_later()) == 2
    assert mailbox.take(TASK, ORG_A, ORG_B, timeout=0) == frame_for()
    with pytest.raises(MailboxFull, match="no channel"):
        asyncio.run(
            receive_stream(
                _chunks(stream_of(frame_for(task=TASK + 5)), 64),
                mailbox,
                sender_org=ORG_A,
                max_frame_bytes=1024,
                full_wait_s=0.1,
            )
        )


# --- frame streams and the HTTP wire -------------------------------------------------------------


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def stream_of(*frames: bytes) -> bytes:
    return b"".join(STREAM_LENGTH.pack(len(frame)) + frame for frame in frames)


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
def test_receive_stream_queues_frames_split_anywhere(piece: int) -> None:
    mailbox = opened()
    frames = [frame_for(size=size) for size in (0, 5, 300)]
    stream = _chunks(stream_of(*frames), piece)
    assert (
        asyncio.run(
            receive_stream(stream, mailbox, sender_org=ORG_A, max_frame_bytes=1024, full_wait_s=1)
        )
        == 3
    )
    assert [mailbox.take(TASK, ORG_A, ORG_B, timeout=0) for _ in frames] == frames


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (stream_of(frame_for())[:-1], ValueError, "ends inside a frame"),
        (b"\x00\x00", ValueError, "ends inside a frame"),
        (STREAM_LENGTH.pack(1025) + bytes(1025), FrameTooLarge, "at most 1024"),
        (stream_of(b"garbage"), ValueError, "too short"),
    ],
)
def test_receive_stream_refuses_malformed_streams(
    data: bytes, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        asyncio.run(
            receive_stream(
                _chunks(data, 64), opened(), sender_org=ORG_A, max_frame_bytes=1024, full_wait_s=1
            )
        )


def test_receive_stream_keeps_no_frame_in_another_senders_name() -> None:
    """A stream proven to come from ORG_A may not carry a frame that names another sender, even
    on a route a channel of this node has open: that frame and the rest of the stream are
    refused, and nothing of it is queued."""
    mailbox = opened()
    stream = stream_of(frame_for(), frame_for(sender=ORG_B + 1), frame_for(size=2))
    with pytest.raises(ForeignFrame, match=f"organisation {ORG_A} names {ORG_B + 1} as sender"):
        asyncio.run(
            receive_stream(
                _chunks(stream, 64), mailbox, sender_org=ORG_A, max_frame_bytes=1024, full_wait_s=1
            )
        )
    assert mailbox.take(TASK, ORG_A, ORG_B, timeout=0) == frame_for()
    for sender in (ORG_A, ORG_B + 1):
        with pytest.raises(ChannelTimeout):
            mailbox.take(TASK, sender, ORG_B, timeout=0)


def test_receive_stream_waits_for_room_then_gives_up() -> None:
    mailbox = opened(max_frames_per_queue=1)
    two = stream_of(frame_for(), frame_for())

    async def taken_later() -> int:
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, mailbox.take, TASK, ORG_A, ORG_B, 0)
        return await receive_stream(
            _chunks(two, 64), mailbox, sender_org=ORG_A, max_frame_bytes=1024, full_wait_s=5
        )

    assert asyncio.run(taken_later()) == 2  # the second frame waited until the first was taken
    with pytest.raises(MailboxFull):
        asyncio.run(
            receive_stream(
                _chunks(two, 64), mailbox, sender_org=ORG_A, max_frame_bytes=1024, full_wait_s=0.1
            )
        )


class FrameServer:
    """A node's frame route on a real uvicorn server: :func:`receive_stream` into ``mailbox``,
    from ``sender_org`` (which a node learns from the stream's signature)."""

    def __init__(self, mailbox: Mailbox, sender_org: int) -> None:
        self.mailbox = mailbox
        self.sender_org = sender_org
        self.port = free_port()
        config = uvicorn.Config(
            self._app, host="127.0.0.1", port=self.port, log_level="error", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "frame server did not start"
            time.sleep(0.01)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            count = await receive_stream(
                request.stream(),
                self.mailbox,
                sender_org=self.sender_org,
                max_frame_bytes=MAX_FRAME_SIZE,
                full_wait_s=5,
            )
            response = JSONResponse({"frames": count})
        except (ValueError, MailboxFull) as exc:
            response = JSONResponse({"error": str(exc)}, status_code=400)
        await response(scope, receive, send)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def serve() -> Iterator[Callable[[Mailbox, int], FrameServer]]:
    servers: list[FrameServer] = []

    def start(mailbox: Mailbox, sender_org: int) -> FrameServer:
        servers.append(FrameServer(mailbox, sender_org))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as shared:
        yield shared


def http_end(
    me: Org,
    peer: Org,
    client: httpx.Client,
    peer_server: FrameServer,
    mailbox: Mailbox,
    chunk_size: int = CHUNK,
    **wire: Any,
) -> SecureChannel:
    http = HttpWire(
        peer_server.endpoint,
        client,
        mailbox,
        task_id=TASK,
        our_org=me.org_id,
        peer_org=peer.org_id,
        **wire,
    )
    return end(me, peer, http, chunk_size=chunk_size)


def test_http_wire_round_trip_between_two_nodes(
    org_a: Org, org_b: Org, client: httpx.Client, serve: Callable[[Mailbox, int], FrameServer]
) -> None:
    mailbox_a, mailbox_b = Mailbox(local_org=ORG_A), Mailbox(local_org=ORG_B)
    server_a, server_b = serve(mailbox_a, ORG_B), serve(mailbox_b, ORG_A)
    a = http_end(org_a, org_b, client, server_b, mailbox_a)
    b = http_end(org_b, org_a, client, server_a, mailbox_b)
    meet(a, b)
    a.send(bytes(range(100)))
    assert b.recv(timeout=5) == bytes(range(100))
    b.send(b"ack")
    assert a.recv(timeout=5) == b"ack"
    a.finish()  # the peer confirmed every frame
    with pytest.raises(ChannelClosed):
        b.recv(timeout=5)
    b.finish()
    assert a.transcript_hash == b.transcript_hash


def test_http_wire_waits_out_back_pressure(
    org_a: Org, org_b: Org, client: httpx.Client, serve: Callable[[Mailbox, int], FrameServer]
) -> None:
    mailbox_a, mailbox_b = Mailbox(), Mailbox(max_frames_per_queue=1)
    server_a, server_b = serve(mailbox_a, ORG_B), serve(mailbox_b, ORG_A)
    big = 1 << 20
    a = http_end(org_a, org_b, client, server_b, mailbox_a, big, send_timeout=10, queue_frames=1)
    b = http_end(org_b, org_a, client, server_a, mailbox_b, big)
    meet(a, b)
    message = secrets.token_bytes(48 * big)  # far more than the socket buffers hold
    sender = threading.Thread(target=a.send, args=(message,))
    sender.start()
    time.sleep(0.5)  # the peer's mailbox is full: its server stops reading, TCP stalls the sender
    assert sender.is_alive()
    assert b.recv(timeout=10) == message
    sender.join(timeout=10)
    assert not sender.is_alive()
    a.finish()


def test_http_wire_reports_an_uncertain_delivery(
    org_a: Org, org_b: Org, client: httpx.Client
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        channel = end(org_a, org_b, silent_wire(client, silent.getsockname()[1], 0.5))
        channel.greet()  # the hello is written to the socket, never confirmed
        with pytest.raises(PeerUnreachable):
            channel.finish()


def silent_wire(client: httpx.Client, port: int, send_timeout: float) -> HttpWire:
    return HttpWire(
        f"http://127.0.0.1:{port}",
        client,
        Mailbox(),
        task_id=TASK,
        our_org=ORG_A,
        peer_org=ORG_B,
        send_timeout=send_timeout,
    )


def test_http_wire_reports_refused_frames(
    org_a: Org, client: httpx.Client, serve: Callable[[Mailbox, int], FrameServer]
) -> None:
    server = serve(Mailbox(local_org=99), ORG_A)  # refuses frames for org 11 with 400
    wire = HttpWire(server.endpoint, client, Mailbox(), task_id=TASK, our_org=ORG_A, peer_org=ORG_B)
    wire.send_frame(frame_for())
    wire.close()
    with pytest.raises(PeerUnreachable, match=r"HTTP 400.*frame is for organisation 11"):
        wire.confirm()
    with pytest.raises(ChannelClosed):
        wire.send_frame(frame_for())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("connect_attempts", [3, 1000])
def test_http_wire_to_a_dead_port_fails_within_the_timeout(
    org_a: Org, org_b: Org, client: httpx.Client, connect_attempts: int
) -> None:
    wire = HttpWire(
        f"http://127.0.0.1:{free_port()}",
        client,
        Mailbox(),
        task_id=TASK,
        our_org=ORG_A,
        peer_org=ORG_B,
        send_timeout=1.0,
        connect_attempts=connect_attempts,
    )
    channel = end(org_a, org_b, wire)
    started = time.monotonic()
    with pytest.raises(PeerUnreachable, match="peer unreachable"):
        channel.greet()  # the hello waits until the sender thread gives up
    assert time.monotonic() - started < 1.5
    with pytest.raises(PeerUnreachable, match="unusable"):
        channel.wait_for_peer(timeout=1)
    channel.close()  # no close frame after a failure: returns at once


def test_close_is_best_effort_when_the_peer_is_gone(
    org_a: Org, org_b: Org, client: httpx.Client
) -> None:
    channel = end(org_a, org_b, silent_wire(client, free_port(), 0.5))
    started = time.monotonic()
    channel.close()
    assert time.monotonic() - started < 1.0
    with pytest.raises(ChannelClosed):
        channel.recv(timeout=0)


def test_http_wire_recv_times_out(org_a: Org, org_b: Org, client: httpx.Client) -> None:
    wire = HttpWire(
        "http://127.0.0.1:1", client, Mailbox(), task_id=TASK, our_org=ORG_B, peer_org=ORG_A
    )
    responder = end(org_b, org_a, wire)
    responder.greet()
    with pytest.raises(ChannelTimeout):
        responder.wait_for_peer(timeout=0.05)
