"""The frame header of the peer channel: layout, limits and the checks a receiver makes first.

A frame is ``header || body``; the header is clear text, authenticated as the associated data of
the body's AES-GCM (transport frames) or bound through the Noise prologue (hello frames). See
:mod:`privledger.node.transport` for what the body is and ``docs/peer-channel.md`` for the whole
wire format. Parsing checks only what needs no key (sizes, version, flags, distinct orgs), so a
node can refuse garbage with a 400 before any channel sees it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from privledger.node.noise import TAG_SIZE

VERSION = 2  # 1: static-static keys; 2: a Noise KK handshake in the hellos
HEADER = struct.Struct(">B32sQQQB")
HEADER_SIZE = HEADER.size
FLAG_LAST = 0x01
FLAG_CLOSE = 0x02
FLAG_HELLO = 0x04
_VALID_FLAGS = frozenset({0, FLAG_LAST, FLAG_CLOSE, FLAG_HELLO})
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 8 << 20
MAX_FRAME_SIZE = HEADER_SIZE + MAX_CHUNK_SIZE + TAG_SIZE
DEFAULT_MAX_MESSAGE_SIZE = 2 << 30


def _check_uint(name: str, value: int, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer in [0, 2**{bits}), got {value!r}")


def check_ids(task_id: int, our_org: int, peer_org: int) -> None:
    """Refuse ids that do not fit the header, and a channel from an organisation to itself."""
    _check_uint("task_id", task_id, 256)
    _check_uint("our_org", our_org, 64)
    _check_uint("peer_org", peer_org, 64)
    if our_org == peer_org:
        raise ValueError(f"a channel needs two different organisations, got {our_org} twice")


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The clear-text header of a frame (authenticated as described in the module docs)."""

    task_id: int
    sender_org: int
    receiver_org: int
    seq: int
    flags: int

    def pack(self) -> bytes:
        """The ``HEADER_SIZE`` bytes that start the frame (and are its AES-GCM associated data)."""
        task = self.task_id.to_bytes(32, "big")
        return HEADER.pack(VERSION, task, self.sender_org, self.receiver_org, self.seq, self.flags)

    @classmethod
    def parse(cls, frame: bytes) -> FrameHeader:
        """The header of ``frame``; ``ValueError`` (fit for a 400 answer) when malformed."""
        if len(frame) < HEADER_SIZE + TAG_SIZE:
            raise ValueError(
                f"frame too short: {len(frame)} bytes, need at least {HEADER_SIZE + TAG_SIZE}"
            )
        if len(frame) > MAX_FRAME_SIZE:
            raise ValueError(f"frame too large: {len(frame)} bytes, at most {MAX_FRAME_SIZE}")
        version, task, sender, receiver, seq, flags = HEADER.unpack_from(frame)
        if version != VERSION:
            raise ValueError(f"unsupported frame version {version}, expected {VERSION}")
        if flags not in _VALID_FLAGS:
            raise ValueError(f"invalid frame flags {flags:#04x}")
        if sender == receiver:
            raise ValueError(f"frame sender and receiver are the same organisation ({sender})")
        return cls(int.from_bytes(task, "big"), sender, receiver, seq, flags)
