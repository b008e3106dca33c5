"""Forged, replayed and reordered channel frames against running nodes, and garbage frames.

The attacker posts frames to the telecom's frame endpoint during a real PSI task with bank-a. The
test holds the node homes, so it can also seal genuine frames with bank-a's node key: AES-GCM is
deterministic under one key, nonce and header, so such a frame is byte for byte the one bank-a's
node sends (a captured frame). Bank-a is frozen (SIGSTOP) until the attacker's frames are queued,
so they arrive before bank-a's own. Whatever arrives, the telecom's channel rejects it, the task
fails with a reason on chain, the fee goes back to the requester and nothing is anchored.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from privledger.evm.contracts import FailureReason
from privledger.node.keystore import node_public_key
from privledger.node.transport import (
    FLAG_LAST,
    FRAMES_PATH,
    HEADER_SIZE,
    STREAM_LENGTH,
    TAG_SIZE,
    VERSION,
    FrameHeader,
    HttpWire,
    Mailbox,
    SecureChannel,
    memory_wire_pair,
    open_channel,
)

from .conftest import Running, node_key, paused, wait_until
from .test_walking_path import FEE, grant, submit, wait_status

TARGET, PEER = "telecom", "bank-a"  # frames from (pretended) bank-a to the telecom's node
PEER_ADMIN_DEV_ACCOUNT = 1


def _inputs(running: Running) -> tuple[str, str]:
    mine, theirs = running.register(TARGET), running.register(PEER)
    grant(running, PEER, theirs, TARGET)
    return mine, theirs


def _peer_channel(running: Running, task_id: int) -> tuple[SecureChannel, Any]:
    """Bank-a's end of the task's channel to the telecom, sealing into an in-memory wire."""
    ledger = running.ledger(0)
    key = node_key(running, PEER)
    peer_org, target_org = running.org_ids[PEER], running.org_ids[TARGET]
    assert ledger.orgs.get_org(peer_org).node_key == node_public_key(key)  # the key on chain
    ours, theirs = memory_wire_pair()
    channel = open_channel(
        task_id=task_id,
        our_org=peer_org,
        peer_org=target_org,
        our_key=key,
        peer_public_key=ledger.orgs.get_org(target_org).node_key,
        wire=ours,
    )
    return channel, theirs


def _deliver(running: Running, task_id: int, frames: list[bytes]) -> None:
    """Post ``frames`` to the telecom's node as bank-a's node would, and see them all queued."""
    with httpx.Client(timeout=30) as client:
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


def _failed_cleanly(running: Running, task_id: int, because: str) -> None:
    """The telecom failed the task for ``because``; refund, no anchor, no result anywhere."""
    ledger = running.ledger(0)
    target_org = running.org_ids[TARGET]
    with running.client(TARGET, "operator") as client:
        final = wait_status(client, task_id, {"failed", "settled"}, timeout_s=90)
        assert final["status"] == "failed", final
        assert final["failureReason"] == FailureReason.PROTOCOL_ERROR
        assert final["localState"] == "failed"
        assert final["localFailure"].startswith("PROTOCOL_ERROR"), final["localFailure"]
        assert because in final["localFailure"], final["localFailure"]
        assert client.get(f"/tasks/{task_id}/result").status_code == 404
    failed = [e["args"] for e in final["timeline"] if e["event"] == "TaskFailed"]
    assert failed == [
        {"taskId": task_id, "org": target_org, "reasonCode": int(FailureReason.PROTOCOL_ERROR)}
    ]
    refunds = [e["args"] for e in final["timeline"] if e["event"] == "FeeRefunded"]
    assert refunds == [{"taskId": task_id, "payerOrg": target_org, "amount": FEE}]
    assert ledger.tasks.escrow_of(task_id) == 0
    # bank-a, awake again, closes its side too; nothing half-done is anchored by anyone
    with running.client(PEER, "operator") as client:
        wait_until(
            lambda: client.get(f"/tasks/{task_id}").json()["localState"] == "failed",
            "bank-a never closed the failed task",
        )
    assert not ledger.tasks.anchors(task_id)


def test_forged_frame_fails_the_task_and_refunds(running: Running) -> None:
    def forged(task_id: int) -> list[bytes]:
        # the right header (task, sender, receiver, seq 0), a body and tag made up without a key
        header = FrameHeader(
            task_id, running.org_ids[PEER], running.org_ids[TARGET], 0, FLAG_LAST
        ).pack()
        return [header + secrets.token_bytes(TAG_SIZE + 64)]

    task_id = _attack(running, forged)
    _failed_cleanly(running, task_id, "frame failed authentication")


def test_replayed_frame_fails_the_task_and_refunds(running: Running) -> None:
    def replayed(task_id: int) -> list[bytes]:
        channel, wire = _peer_channel(running, task_id)
        channel.greet()  # bank-a's first frame, exactly as its node sends it
        genuine = wire.recv_frame(0)
        return [genuine, genuine]  # accepted once, then replayed

    task_id = _attack(running, replayed)
    _failed_cleanly(running, task_id, "replayed or reordered frame: expected seq 1, got 0")


def test_reordered_frames_fail_the_task_and_refund(running: Running) -> None:
    def reordered(task_id: int) -> list[bytes]:
        channel, wire = _peer_channel(running, task_id)
        channel.greet()
        channel.send(b"the first message")
        first, second = wire.recv_frame(0), wire.recv_frame(0)
        return [second, first]

    task_id = _attack(running, reordered)
    _failed_cleanly(running, task_id, "replayed or reordered frame: expected seq 0, got 1")


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
    target = running.nodes[TARGET]
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
        response = httpx.post(
            f"{target.url}{FRAMES_PATH}",
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == status, (name, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (name, error)
        assert message in error["message"], (name, error)
