"""Message channel between two protocol parties, with a transcript hash chain.

A :class:`Channel` carries whole messages (``bytes``) in order between two ends, called side
``"a"`` and side ``"b"``. Authentication and encryption are the transport's job (see the trust
model in DESIGN.md: X25519 + HKDF bound to the task id, AES-GCM with sequence-number nonces); a
protocol only sees plaintext messages.

Transcript: both ends keep a SHA-256 hash chain over every message::

    h_0     = 32 zero bytes
    h_{i+1} = sha256(h_i || sender_side || len(payload) as 8-byte big-endian || payload)

where ``sender_side`` is ``b"a"`` or ``b"b"`` -- the side that *sent* the message, so both ends
tag it alike. The chain is identical on both ends when messages never cross in flight, i.e. the
protocol is turn-based: a side sends only after it has received everything the peer sent before.
Protocols in this package keep to that discipline so the transcript hash can be anchored.

The records helpers carry a 2-D ``uint8`` array (``n`` records of ``width`` bytes) as one message
with a 12-byte header (record count as 8-byte and width as 4-byte big-endian), so a truncated or
mis-typed message is detected and refused with :class:`ChannelError`.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import queue
import struct
import threading
from types import TracebackType
from typing import Literal, Self

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

Side = Literal["a", "b"]

_RECORDS_HEADER = struct.Struct(">QI")


class ChannelError(Exception):
    """The channel, or a message received over it, cannot be used."""


class ChannelTimeout(ChannelError):
    """No message arrived within the timeout."""


class ChannelClosed(ChannelError):
    """The channel was closed (by either end) and no message is left to read."""


class Channel(abc.ABC):
    """One end of an ordered, message-oriented two-party channel.

    Subclasses implement ``_send_raw``, ``_recv_raw`` and ``close``; the public ``send`` and
    ``recv`` record every message in the transcript hash chain.
    """

    def __init__(self, side: Side) -> None:
        if side not in ("a", "b"):
            raise ValueError(f"side must be 'a' or 'b', not {side!r}")
        self._side: Side = side
        self._transcript = bytes(32)
        self._transcript_lock = threading.Lock()
        self.bytes_sent = 0  # payload bytes, before any transport framing
        self.bytes_received = 0

    @property
    def side(self) -> Side:
        """Which end of the channel this is."""
        return self._side

    @property
    def transcript_hash(self) -> bytes:
        """The current head of the transcript hash chain (32 bytes)."""
        with self._transcript_lock:
            return self._transcript

    def send(self, payload: bytes) -> None:
        """Send one message to the peer."""
        self._send_raw(payload)
        self.bytes_sent += len(payload)
        self._record(self._side, payload)

    def recv(self, timeout: float | None = None) -> bytes:
        """Receive the next message; raise :class:`ChannelTimeout` or :class:`ChannelClosed`."""
        payload = self.recv_buffer(timeout)
        return payload if isinstance(payload, bytes) else bytes(payload)

    def recv_buffer(self, timeout: float | None = None) -> bytes | bytearray:
        """:meth:`recv`, except that a message the channel assembled from several chunks comes
        as the ``bytearray`` it was assembled in, not copied: for large binary payloads."""
        payload = self._recv_raw(timeout)
        self.bytes_received += len(payload)
        self._record("b" if self._side == "a" else "a", payload)
        return payload

    def delivering(self) -> None:
        """Say that what this party sends from now on gives the peer its output, in whole or in
        part. A protocol calls it before such messages, wherever they come in its sequence. A
        channel that holds a provider's messages until its result is on the ledger (the node's,
        :mod:`privledger.node.release`) records the delivery on the ledger before any of them
        leaves, when this party still has messages to receive; other channels do nothing."""
        return

    @abc.abstractmethod
    def close(self) -> None:
        """Close the channel; idempotent."""

    @abc.abstractmethod
    def _send_raw(self, payload: bytes) -> None: ...

    @abc.abstractmethod
    def _recv_raw(self, timeout: float | None) -> bytes | bytearray: ...

    def _record(self, sender: Side, payload: bytes | bytearray) -> None:
        link = hashlib.sha256()
        with self._transcript_lock:
            link.update(self._transcript)
            link.update(sender.encode())
            link.update(len(payload).to_bytes(8, "big"))
            link.update(payload)
            self._transcript = link.digest()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class InMemoryChannel(Channel):
    """Thread-safe in-process channel end; build a connected pair with :func:`channel_pair`.

    Closing either end closes the link: ``send`` then raises :class:`ChannelClosed` on both ends,
    while ``recv`` still delivers the messages already sent and then raises it.
    """

    def __init__(
        self,
        side: Side,
        inbox: queue.Queue[bytes | None],
        outbox: queue.Queue[bytes | None],
        closed: threading.Event,
    ) -> None:
        super().__init__(side)
        self._inbox = inbox
        self._outbox = outbox
        self._closed = closed

    def close(self) -> None:
        if not self._closed.is_set():
            logger.debug("in-memory channel closed by side %s", self.side)
            self._closed.set()
            self._outbox.put(None)
            self._inbox.put(None)

    def _send_raw(self, payload: bytes) -> None:
        if self._closed.is_set():
            raise ChannelClosed("channel is closed")
        self._outbox.put(bytes(payload))

    def _recv_raw(self, timeout: float | None) -> bytes:
        try:
            payload = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise ChannelTimeout(f"no message within {timeout} s") from None
        if payload is None:
            self._inbox.put(None)  # every later recv must fail the same way
            raise ChannelClosed("channel is closed")
        return payload


def channel_pair() -> tuple[Channel, Channel]:
    """Two connected in-memory channel ends: side ``"a"`` and side ``"b"``."""
    a_to_b: queue.Queue[bytes | None] = queue.Queue()
    b_to_a: queue.Queue[bytes | None] = queue.Queue()
    closed = threading.Event()
    return (
        InMemoryChannel("a", inbox=b_to_a, outbox=a_to_b, closed=closed),
        InMemoryChannel("b", inbox=a_to_b, outbox=b_to_a, closed=closed),
    )


def send_records(channel: Channel, records: npt.NDArray[np.uint8]) -> None:
    """Send a 2-D ``uint8`` array of fixed-width records as one self-describing message."""
    if records.ndim != 2 or records.dtype != np.uint8:
        raise ValueError(f"need a 2-D uint8 array, got {records.ndim}-D {records.dtype}")
    count, width = records.shape
    header = _RECORDS_HEADER.pack(count, width)
    channel.send(b"".join((header, np.ascontiguousarray(records).data)))  # one copy


def recv_records(
    channel: Channel, width: int, timeout: float | None = None, *, count: int | None = None
) -> npt.NDArray[np.uint8]:
    """Receive records sent by :func:`send_records` as an ``(n, width)`` array over the message.

    Raises :class:`ChannelError` when the message is malformed, has another record width, or
    (with ``count``) another number of records.
    """
    payload = channel.recv_buffer(timeout)
    if len(payload) < _RECORDS_HEADER.size:
        raise ChannelError(f"records message too short ({len(payload)} bytes)")
    got_count, got_width = _RECORDS_HEADER.unpack_from(payload)
    if got_width != width:
        raise ChannelError(f"expected records of {width} bytes, got {got_width}")
    if count is not None and got_count != count:
        raise ChannelError(f"expected {count} records, got {got_count}")
    body = memoryview(payload)[_RECORDS_HEADER.size :]
    if len(body) != got_count * got_width:
        raise ChannelError(
            f"records message carries {len(body)} bytes, header says {got_count} x {got_width}"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(got_count, got_width)


def recv_exact(channel: Channel, size: int, timeout: float | None, what: str) -> bytes:
    """The next message, which must be exactly ``size`` bytes (else :class:`ChannelError`)."""
    payload = channel.recv(timeout)
    if len(payload) != size:
        raise ChannelError(f"expected a {size}-byte {what}, got {len(payload)} bytes")
    return payload
