"""Frames from outsiders, forged and replayed channel frames against running nodes, and garbage.

An outsider cannot post frames at all: a frame stream must be signed by the node of the
organisation its frames name as their sender. The other attacks post frames to the telecom's
frame endpoint during a real PSI task with bank-a (the handshake's initiator, the lower org id) in
bank-a's name, as bank-a's node could (the test holds the node homes, so it signs with bank-a's
node account): made-up frames, and frames made with bank-a's node key that stand for recordings of
bank-a's earlier frames: hellos of an earlier task, or every frame of an earlier channel of this
very task (as a node whose home was recreated would open it again). Bank-a is frozen (SIGSTOP)
until the attacker's frames are queued, so they arrive before bank-a's own. Whatever arrives,
the telecom's channel accepts only what authenticates as the next step of the handshake or the
next frame and drops the rest: the attacker cannot stop the task nor resume an old channel, and
the task settles with the right answer once bank-a's genuine frames arrive.
"""

from __future__ import annotations

import queue
import secrets
import threading
from typing import Any

import httpx
import pytest
from eth_account import Account

from privledger.node.keystore import node_public_key
from privledger.node.peer_auth import FRAMES_SCHEME, signed_headers
from privledger.node.transport import (
    FLAG_HELLO,
    FLAG_LAST,
    FRAMES_PATH,
    HEADER_SIZE,
    STREAM_LENGTH,
    TAG_SIZE,
    VERSION,
    FrameHeader,
    HttpWire,
    Mailbox,
    MemoryWire,
    SecureChannel,
    open_channel,
)

from .conftest import (
    Running,
    log_mark,
    node_account,
    node_key,
    paused,
    peer_client,
    post_frames,
)
from .test_walking_path import grant, submit, wait_status

TARGET, PEER = "telecom", "bank-a"  # frames from (pretended) bank-a to the telecom's node
PEER_ADMIN_DEV_ACCOUNT = 1


def _inputs(running: Running) -> tuple[str, str]:
    mine, theirs = running.register(TARGET), running.register(PEER)
    grant(running, PEER, theirs, TARGET)
    return mine, theirs


def _peer_end(running: Running, task_id: int, wire: MemoryWire) -> SecureChannel:
    """Bank-a's end of the task's channel to the telecom, with bank-a's node key."""
    ledger = running.ledger(0)
    key = node_key(running, PEER)
    peer_org, target_org = running.org_ids[PEER], running.org_ids[TARGET]
    assert ledger.orgs.get_org(peer_org).node_key == node_public_key(key)  # the key on chain
    assert peer_org < target_org  # bank-a is the initiator: its hello comes first
    return open_channel(
        task_id=task_id,
        our_org=peer_org,
        peer_org=target_org,
        our_key=key,
        peer_public_key=ledger.orgs.get_org(target_org).node_key,
        wire=wire,
    )


def _hello(running: Running, task_id: int) -> bytes:
    """A hello of bank-a's for ``task_id``, as its node sends it when it opens the channel."""
    sent: queue.Queue[bytes] = queue.Queue()
    _peer_end(running, task_id, MemoryWire(inbox=queue.Queue(), outbox=sent)).greet()
    return sent.get_nowait()


def _earlier_channel(running: Running, task_id: int, *messages: bytes) -> list[bytes]:
    """Every frame bank-a sent on a whole earlier channel of ``task_id`` with the telecom: its
    hello, its key confirmation, ``messages`` and its close."""
    to_peer: queue.Queue[bytes] = queue.Queue()
    from_peer: queue.Queue[bytes] = queue.Queue()
    to_target: queue.Queue[bytes] = queue.Queue()
    peer = _peer_end(running, task_id, MemoryWire(inbox=to_peer, outbox=from_peer))
    target = open_channel(
        task_id=task_id,
        our_org=running.org_ids[TARGET],
        peer_org=running.org_ids[PEER],
        our_key=node_key(running, TARGET),
        peer_public_key=running.ledger(0).orgs.get_org(running.org_ids[PEER]).node_key,
        wire=MemoryWire(inbox=to_target, outbox=to_peer),
    )
    peer.greet()
    target.greet()
    recorded = [from_peer.get_nowait()]
    to_target.put(recorded[-1])
    responder = threading.Thread(target=target.wait_for_peer, args=(10,))
    responder.start()
    peer.wait_for_peer(10)
    recorded.append(from_peer.get_nowait())
    to_target.put(recorded[-1])
    responder.join(10)
    for message in messages:
        peer.send(message)
    peer.close()
    return recorded + [from_peer.get_nowait() for _ in range(from_peer.qsize())]


def _deliver(running: Running, task_id: int, frames: list[bytes]) -> None:
    """Post ``frames`` to the telecom's node as bank-a's node would, and see them all queued."""
    with peer_client(running, PEER) as client:
        wire = HttpWire(
            running.nodes[TARGET].url,
            client,
            Mailbox(),
            task_id=task_id,
            our_org=running.org_ids[PEER],
            peer_org=running.org_ids[TARGET],
        )
        for frame in frames:
            wire.send_frame(frame)
        wire.close()
        wire.confirm()  # the node answered that it queued every frame


def _attack(running: Running, frames_for: Any) -> int:
    """Run a real task while bank-a is frozen and deliver ``frames_for(task_id)`` first."""
    inputs = _inputs(running)
    with paused(running.nodes[PEER]):
        task_id = int(submit(running, *inputs)["taskId"])
        _deliver(running, task_id, frames_for(task_id))
    return task_id


def _survived(running: Running, task_id: int, since: int) -> None:
    """The task settled with the right answer; the telecom's node dropped the attacker's frames."""
    ledger = running.ledger(0)
    with running.client(TARGET, "operator") as client:
        final = wait_status(client, task_id, {"failed", "settled"}, timeout_s=120)
        assert final["status"] == "settled", final
        result = client.get(f"/tasks/{task_id}/result")
        assert result.status_code == 200, result.text
    assert len(ledger.tasks.anchors(task_id)) == 2
    expected = running.people[TARGET] & running.people[PEER]
    assert set(result.json()["items"]) == expected
    with running.nodes[TARGET].log_path.open("rb") as log:
        log.seek(since)
        assert f"task {task_id}: dropped a frame".encode() in log.read()


def test_forged_frames_are_dropped_and_the_task_settles(running: Running) -> None:
    def forged(task_id: int) -> list[bytes]:
        # the right headers (task, sender, receiver, seq 0), bodies made up without a key
        sender, receiver = running.org_ids[PEER], running.org_ids[TARGET]
        return [
            FrameHeader(task_id, sender, receiver, 0, flags).pack()
            + secrets.token_bytes(TAG_SIZE + 32)
            for flags in (FLAG_HELLO, FLAG_LAST)
        ]

    since = log_mark(running.nodes[TARGET])
    _survived(running, _attack(running, forged), since)


def test_a_replayed_hello_is_dropped_and_the_task_settles(running: Running) -> None:
    def replayed(task_id: int) -> list[bytes]:
        earlier = _hello(running, task_id - 1)  # bank-a's hello of an earlier task
        readdressed = bytearray(earlier)
        readdressed[1:33] = task_id.to_bytes(32, "big")
        return [bytes(readdressed), bytes(readdressed)]

    since = log_mark(running.nodes[TARGET])
    _survived(running, _attack(running, replayed), since)


def test_a_recorded_channel_cannot_resume_and_the_task_settles(running: Running) -> None:
    """Bank-a's frames of an earlier channel of this very task, its messages reordered: the
    telecom answers the old hello (it cannot tell it from a new one) but no later frame of the
    recording authenticates, and bank-a's genuine handshake still completes."""

    def recorded(task_id: int) -> list[bytes]:
        hello, confirmation, first, second, close = _earlier_channel(
            running, task_id, b"the first message", b"the second"
        )
        return [hello, confirmation, second, first, close]

    since = log_mark(running.nodes[TARGET])
    _survived(running, _attack(running, recorded), since)


def test_frames_for_a_task_not_yet_on_chain_are_not_kept(running: Running) -> None:
    """An outsider queues a frame ahead of the next task id (ids are sequential): the node keeps
    nothing of it (429 once no channel opened for it), and the task, when it comes, settles."""
    next_task = running.ledger(0).tasks.task_count() + 1
    forged = FrameHeader(
        next_task, running.org_ids[PEER], running.org_ids[TARGET], 0, FLAG_LAST
    ).pack() + secrets.token_bytes(TAG_SIZE + 64)
    refused = post_frames(running, PEER, TARGET, _stream(forged))
    assert refused.status_code == 429, refused.text
    assert "no channel" in refused.json()["error"]["message"]
    inputs = _inputs(running)
    since = log_mark(running.nodes[TARGET])
    task_id = int(submit(running, *inputs)["taskId"])
    assert task_id == next_task
    with running.client(TARGET, "operator") as client:
        assert wait_status(client, task_id, {"failed", "settled"})["status"] == "settled"
    with running.nodes[TARGET].log_path.open("rb") as log:
        log.seek(since)
        assert f"task {task_id}: dropped a frame".encode() not in log.read()


def _frame(
    task_id: int, sender: int, receiver: int, *, version: int = VERSION, flags: int = 0
) -> bytes:
    """A frame with these header fields and a made-up body."""
    header = bytearray(FrameHeader(task_id, sender, receiver, 0, FLAG_LAST).pack())
    header[0] = version
    header[-1] = flags or FLAG_LAST
    return bytes(header) + secrets.token_bytes(TAG_SIZE + 8)


def _stream(*frames: bytes) -> bytes:
    """A frame-stream body: each frame after its 4-byte big-endian length."""
    return b"".join(STREAM_LENGTH.pack(len(frame)) + frame for frame in frames)


def test_garbage_frames_get_a_clear_4xx(running: Running) -> None:
    target_org, peer_org = running.org_ids[TARGET], running.org_ids[PEER]
    other_org = running.org_ids["bank-b"]
    task = 1
    cases = {
        "garbage": (b"not a frame stream at all", 413, "too_large", "at most"),
        "cut": (_stream(_frame(task, peer_org, target_org))[:-3], 400, "malformed_frame", "ends"),
        "short": (_stream(secrets.token_bytes(HEADER_SIZE)), 400, "malformed_frame", "too short"),
        "version": (
            _stream(_frame(task, peer_org, target_org, version=VERSION + 1)),
            400,
            "malformed_frame",
            "version",
        ),
        "flags": (
            _stream(_frame(task, peer_org, target_org, flags=0x80)),
            400,
            "malformed_frame",
            "flags",
        ),
        "self": (
            _stream(_frame(task, target_org, target_org)),
            400,
            "malformed_frame",
            "same organisation",
        ),
        "elsewhere": (
            _stream(_frame(task, peer_org, other_org)),
            400,
            "malformed_frame",
            "is for organisation",
        ),
    }
    for name, (body, status, code, message) in cases.items():
        response = post_frames(running, PEER, TARGET, body)
        assert response.status_code == status, (name, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (name, error)
        assert message in error["message"], (name, error)


@pytest.mark.security
def test_only_the_senders_node_may_post_its_frames(running: Running) -> None:
    """While the telecom's channel waits for bank-a's frames (bank-a frozen), others post frames
    in bank-a's name on that very route: an outsider without a signature, an account that is no
    operator signing for bank-a, and bank-b's node signing for bank-b. Each stream is refused
    before a frame of it is read, so none can take the mailbox's room nor reach the channel
    (before, all were queued: an outsider could fill the mailbox every task's frames need), and
    the task settles once bank-a's own frames come."""
    inputs = _inputs(running)
    url = running.nodes[TARGET].url + FRAMES_PATH
    peer_org, target_org = running.org_ids[PEER], running.org_ids[TARGET]
    since = log_mark(running.nodes[TARGET])
    with paused(running.nodes[PEER]):
        task_id = int(submit(running, *inputs)["taskId"])
        made_up = FrameHeader(task_id, peer_org, target_org, 0, FLAG_HELLO).pack()
        body = _stream(made_up + secrets.token_bytes(TAG_SIZE + 32))

        def posted(headers: dict[str, str]) -> httpx.Response:
            return httpx.post(url, content=body, headers=headers, timeout=60)

        outsider = posted({})
        assert outsider.status_code == 401, outsider.text
        assert outsider.json()["error"]["code"] == "unauthorized"
        no_operator = posted(
            signed_headers(Account.create(), FRAMES_SCHEME, FRAMES_PATH, peer_org, target_org, b"")
        )
        assert no_operator.status_code == 403, no_operator.text
        assert "no operator" in no_operator.json()["error"]["message"]
        other_org = running.org_ids["bank-b"]
        other_node = node_account(running, "bank-b")
        impostor = posted(
            signed_headers(other_node, FRAMES_SCHEME, FRAMES_PATH, other_org, target_org, b"")
        )
        assert impostor.status_code == 403, impostor.text
        message = impostor.json()["error"]["message"]
        assert f"organisation {other_org} names {peer_org} as sender" in message
    with running.client(TARGET, "operator") as client:
        final = wait_status(client, task_id, {"failed", "settled"}, timeout_s=120)
    assert final["status"] == "settled", final
    with running.nodes[TARGET].log_path.open("rb") as log:
        log.seek(since)
        assert f"task {task_id}: dropped a frame".encode() not in log.read()
