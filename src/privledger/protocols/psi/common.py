"""What every PSI protocol here shares: the result type, the opening handshake, input checks.

The handshake is one JSON header each way (side "a" first, so it never deadlocks) naming the
protocol, its version, the party's role and output mode and its set size; a mismatch is refused
with :class:`PsiHandshakeError` before any protocol message is sent. Set sizes are exchanged in the
clear: every protocol here reveals them (see each protocol's docstring).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from privledger.protocols.channel import Channel, ChannelError

Role = Literal["requester", "provider"]
MAX_SET_SIZE = 1 << 40


class PsiHandshakeError(ChannelError):
    """The peer's header is malformed or does not match ours (protocol, version, role, mode)."""


@dataclass(frozen=True)
class PsiResult:
    """Outcome for one party.

    ``intersection`` holds this party's own items that are in the intersection (original bytes,
    de-duplicated, sorted) when ``learned_output`` is true, else it is empty. ``peer_size`` is the
    peer's set size after de-duplication.
    """

    intersection: list[bytes] = field(repr=False)
    learned_output: bool
    peer_size: int


@dataclass(frozen=True)
class Header:
    protocol: str
    version: int
    role: Role
    reveal_to_provider: bool
    size: int

    def encode(self) -> bytes:
        fields = {
            "protocol": self.protocol,
            "version": self.version,
            "role": self.role,
            "reveal_to_provider": self.reveal_to_provider,
            "size": self.size,
        }
        return json.dumps(fields, sort_keys=True).encode()

    def check_peer(self, payload: bytes) -> Header:
        """Parse the peer's header; refuse another protocol, version or a malformed header."""
        try:
            fields = json.loads(payload)
        except ValueError:
            raise PsiHandshakeError("peer header is not JSON") from None
        if not isinstance(fields, dict):
            raise PsiHandshakeError("peer header is not a JSON object")
        protocol, version = fields.get("protocol"), fields.get("version")
        if (protocol, version) != (self.protocol, self.version):
            raise PsiHandshakeError(
                f"peer speaks {protocol!r} version {version!r}, "
                f"we speak {self.protocol!r} {self.version}"
            )
        role, reveal = fields.get("role"), fields.get("reveal_to_provider")
        size = fields.get("size")
        if role not in ("requester", "provider") or not isinstance(reveal, bool):
            raise PsiHandshakeError(f"peer header has bad role/mode: {role!r}, {reveal!r}")
        if type(size) is not int or not 0 <= size < MAX_SET_SIZE:
            raise PsiHandshakeError(f"peer header has bad set size {size!r}")
        return Header(self.protocol, self.version, role, reveal, size)

    def check_pairing(self, theirs: Header) -> None:
        """Refuse a peer of the same role or another output mode."""
        if theirs.role == self.role:
            raise PsiHandshakeError(f"both parties are {self.role!r}; one must be the other role")
        if theirs.reveal_to_provider != self.reveal_to_provider:
            raise PsiHandshakeError(
                f"mode mismatch: we run reveal_to_provider={self.reveal_to_provider}, "
                f"the peer reveal_to_provider={theirs.reveal_to_provider}"
            )


def handshake(channel: Channel, ours: Header, timeout: float | None) -> int:
    """Exchange headers and return the peer's set size.

    Both headers travel before the pairing is checked, so both parties see the refusal instead of
    one of them waiting for a header that never comes.
    """
    if channel.side == "a":
        channel.send(ours.encode())
        theirs = ours.check_peer(channel.recv(timeout))
    else:
        payload = channel.recv(timeout)
        channel.send(ours.encode())  # before any check: side a waits for it
        theirs = ours.check_peer(payload)
    ours.check_pairing(theirs)
    return theirs.size


def check_role(role: str) -> None:
    if role not in ("requester", "provider"):
        raise ValueError(f"role must be 'requester' or 'provider', not {role!r}")


def distinct_items(items: Sequence[bytes]) -> list[bytes]:
    """The items without duplicates, in first-seen order; anything but bytes is refused."""
    if not all(isinstance(item, bytes) for item in items):
        raise TypeError("PSI items must be bytes (encode text first)")
    return list(dict.fromkeys(items))


def random_permutation(n: int) -> npt.NDArray[np.int64]:
    """A uniformly random permutation (argsort of 64-bit keys from :mod:`secrets`)."""
    keys = np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64)
    return np.argsort(keys, kind="stable").astype(np.int64)
