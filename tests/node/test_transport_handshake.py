"""Attacks on the channel's handshake: forged and replayed hellos, frames of earlier channels,
and a node whose home was recreated opening a task's channel again."""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privledger.node.frames import FLAG_HELLO, FLAG_LAST, HEADER_SIZE, FrameHeader
from privledger.node.noise import DH_LEN, TAG_SIZE
from privledger.node.transport import MAX_PENDING_HANDSHAKES, MemoryWire, SecureChannel
from privledger.protocols.channel import ChannelTimeout

from .test_transport import ORG_A, ORG_B, TASK, Org, end, link

pytestmark = pytest.mark.security


@pytest.fixture
def orgs() -> tuple[Org, Org]:
    """A (the initiator, lower id) and B with their static node keys."""
    return Org(ORG_A, X25519PrivateKey.generate()), Org(ORG_B, X25519PrivateKey.generate())


@dataclass
class Waiting:
    """B's end in ``wait_for_peer`` on its own thread; the test plays the network."""

    channel: SecureChannel
    inbox: queue.Queue[bytes]
    answers: queue.Queue[bytes]  # what B sends
    error: list[BaseException]

    def feed(self, *frames: bytes) -> None:
        for frame in frames:
            self.inbox.put(frame)

    def answer(self) -> bytes:
        return self.answers.get(timeout=5)


@contextmanager
def waiting_responder(org_a: Org, org_b: Org, timeout: float = 5) -> Iterator[Waiting]:
    inbox: queue.Queue[bytes] = queue.Queue()
    answers: queue.Queue[bytes] = queue.Queue()
    b = end(org_b, org_a, MemoryWire(inbox=inbox, outbox=answers))
    b.greet()
    error: list[BaseException] = []

    def wait() -> None:
        try:
            b.wait_for_peer(timeout)
        except BaseException as exc:  # handed to the test thread
            error.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        yield Waiting(b, inbox, answers, error)
    finally:
        thread.join(timeout + 1)


def initiator_end(
    org_a: Org, org_b: Org
) -> tuple[SecureChannel, queue.Queue[bytes], queue.Queue[bytes]]:
    inbox: queue.Queue[bytes] = queue.Queue()
    sent: queue.Queue[bytes] = queue.Queue()
    return end(org_a, org_b, MemoryWire(inbox=inbox, outbox=sent)), inbox, sent


def test_forged_hellos_are_dropped_and_the_genuine_one_completes(orgs: tuple[Org, Org]) -> None:
    org_a, org_b = orgs
    a, a_inbox, a_sent = initiator_end(org_a, org_b)
    a.greet()
    genuine = a_sent.get_nowait()
    mallory = Org(ORG_A, X25519PrivateKey.generate())  # claims org A without its key
    impostor, _, impostor_sent = initiator_end(mallory, org_b)
    impostor.greet()
    other_sent: queue.Queue[bytes] = queue.Queue()
    end(org_a, org_b, MemoryWire(queue.Queue(), other_sent), task=TASK + 1).greet()
    header = genuine[:HEADER_SIZE]
    forgeries = [
        header + secrets.token_bytes(DH_LEN + TAG_SIZE),  # made up
        impostor_sent.get_nowait(),  # the wrong static key
        header + other_sent.get_nowait()[HEADER_SIZE:],  # another task's hello, re-addressed
        header + bytes(DH_LEN) + genuine[HEADER_SIZE + DH_LEN :],  # a low-order ephemeral key
        FrameHeader(TASK, ORG_A, ORG_B, 1, FLAG_LAST).pack() + bytes(TAG_SIZE),  # no keys yet
        genuine[:-1],  # truncated
    ]
    with waiting_responder(org_a, org_b) as b:
        b.feed(*forgeries)
        with pytest.raises(queue.Empty):  # none is answered
            b.answers.get(timeout=0.3)
        b.feed(genuine)
        a_inbox.put(b.answer())
        a.wait_for_peer(timeout=5)
        b.feed(a_sent.get_nowait())  # the key confirmation
    assert not b.error
    assert b.channel.dropped == len(forgeries)
    a.send(b"after the forgeries")
    b.feed(a_sent.get_nowait())
    assert b.channel.recv(timeout=1) == b"after the forgeries"


def test_a_forged_answer_is_dropped_by_the_initiator(orgs: tuple[Org, Org]) -> None:
    org_a, org_b = orgs
    a, a_inbox, a_sent = initiator_end(org_a, org_b)
    a.greet()
    with waiting_responder(org_a, org_b) as b:
        b.feed(a_sent.get_nowait())
        answer = b.answer()
        forged = answer[:HEADER_SIZE] + secrets.token_bytes(len(answer) - HEADER_SIZE)
        a_inbox.put(forged)
        a_inbox.put(answer)
        a.wait_for_peer(timeout=5)
        b.feed(a_sent.get_nowait())
    assert a.dropped == 1 and not b.error


def test_a_replayed_old_handshake_cannot_resume_the_channel(orgs: tuple[Org, Org]) -> None:
    """Everything A sent on an earlier channel of the task, replayed to a B that opens it anew
    (its node home recreated): B answers the old hello (it cannot tell), but the old key
    confirmation and messages never authenticate, and the genuine A still gets through."""
    org_a, org_b = orgs
    earlier = link(org_a, org_b)
    recorded = earlier.opening + earlier.sealed(b"secret of the earlier run", close=True)
    a, a_inbox, a_sent = initiator_end(org_a, org_b)
    a.greet()
    with waiting_responder(org_a, org_b) as b:
        b.feed(*recorded)
        b.answer()  # B answered the replayed hello: that handshake can never be finished
        with pytest.raises(queue.Empty):
            b.answers.get(timeout=0.3)
        assert b.channel.dropped == len(recorded) - 1
        b.feed(a_sent.get_nowait())
        a_inbox.put(b.answer())
        a.wait_for_peer(timeout=5)
        b.feed(a_sent.get_nowait())
    assert not b.error
    assert b.channel.handshake_hash == a.handshake_hash != earlier.channel.handshake_hash
    b.feed(*recorded[2:])  # the old messages, again, now that B has keys
    a.send(b"new")
    b.feed(a_sent.get_nowait())
    assert b.channel.recv(timeout=1) == b"new"


def test_a_replay_after_the_genuine_hello_does_not_displace_it(orgs: tuple[Org, Org]) -> None:
    org_a, org_b = orgs
    earlier = link(org_a, org_b)
    a, a_inbox, a_sent = initiator_end(org_a, org_b)
    a.greet()
    hello = a_sent.get_nowait()
    with waiting_responder(org_a, org_b) as b:
        b.feed(hello, earlier.opening[0], hello)  # the genuine, a replay, the genuine again
        answers = [b.answer(), b.answer()]
        with pytest.raises(queue.Empty):  # each distinct hello is answered once
            b.answers.get(timeout=0.3)
        a_inbox.put(answers[1])  # the answer to the replay comes first: A drops it
        a_inbox.put(answers[0])
        a.wait_for_peer(timeout=5)
        b.feed(a_sent.get_nowait())
    assert not b.error and a.dropped == 1 and b.channel.dropped == 1
    assert b.channel.handshake_hash == a.handshake_hash


def test_hellos_waiting_for_confirmation_are_bounded(orgs: tuple[Org, Org]) -> None:
    org_a, org_b = orgs
    old_hellos = [link(org_a, org_b).opening[0] for _ in range(MAX_PENDING_HANDSHAKES + 1)]
    with waiting_responder(org_a, org_b, timeout=1) as b:
        b.feed(*old_hellos)
    answered = b.answers.qsize()
    assert answered == MAX_PENDING_HANDSHAKES
    assert b.channel.dropped == 1
    assert isinstance(b.error[0], ChannelTimeout)


def test_a_recreated_node_home_reuses_no_key_and_nonce(orgs: tuple[Org, Org]) -> None:
    """B's home is recreated (nothing of the channel kept) and the task's channel runs again
    with the same static keys: every frame of the same (direction, seq, header, plaintext) is
    sealed differently, which under AES-GCM means a different key; frames of the first run are
    dropped by the second."""
    org_a, org_b = orgs
    runs = [link(org_a, org_b) for _ in range(2)]
    sealed = [run.sealed(b"the same message", close=True) for run in runs]
    replies = []
    for run in runs:
        run.channel.send(b"the same reply")
        replies.append(run.back.get_nowait())
    for first, second in [*zip(sealed[0], sealed[1], strict=True), tuple(replies)]:
        assert first[:HEADER_SIZE] == second[:HEADER_SIZE]
        assert first[HEADER_SIZE:] != second[HEADER_SIZE:]
    runs[1].feed(*sealed[0])
    with pytest.raises(ChannelTimeout):
        runs[1].channel.recv(timeout=0.2)
    assert runs[1].channel.dropped == len(sealed[0])


def test_hello_frames_carry_only_the_handshake(orgs: tuple[Org, Org]) -> None:
    org_a, org_b = orgs
    hello = link(org_a, org_b).opening[0]
    assert FrameHeader.parse(hello) == FrameHeader(TASK, ORG_A, ORG_B, 0, FLAG_HELLO)
    assert len(hello) == HEADER_SIZE + DH_LEN + TAG_SIZE
