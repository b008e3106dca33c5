"""Authenticated, encrypted peer channel between organisation nodes.

Security model
--------------
* Peers are **semi-honest**: they run the protocol as written but may try to learn more from what
  they see. The channel authenticates *which node* sent a message; it does not make a peer honest.
* The **network is hostile**: an attacker can read, drop, delay, replay, reorder and forge frames,
  and can post arbitrary bytes to a node's frame endpoint. Against it the channel gives
  confidentiality and integrity of every message, and delivery in order or not at all. A frame
  is accepted only if it authenticates as the *next* frame of its channel; a replayed,
  reordered, forged, altered, truncated or misrouted frame is **dropped and counted, never
  fatal**, so an outsider who can reach a node cannot stop its tasks by posting frames. Only
  what the authenticated peer itself sends can fail the channel (e.g. a close inside a
  message), after which every later call raises. The node's :class:`Mailbox` queues frames
  only for channels this node has opened (a task it takes part in, from that task's peer), in
  bounded queues. The channel cannot stop an attacker from dropping frames (the receiver then
  sees :class:`~privledger.protocols.channel.ChannelTimeout`) or from slowing a task by
  flooding its frame route, and it does not hide message sizes or timing.
* Identity: each organisation has a static X25519 node key whose public half is registered on
  chain. Static-static ECDH gives no forward secrecy: whoever steals a node key can read that
  organisation's recorded past traffic.

Keys
----
``shared = X25519(our_key, peer_public_key)``; an all-zero result (a low-order peer key) is refused.
One 32-byte AES-256-GCM key per direction, so the two directions never share a key/nonce space::

    key(sender -> receiver) = HKDF-SHA256(shared, salt = task_id as 32 bytes big-endian,
                                          info = b"privledger/channel/v1" || sender_org (8 bytes)
                                                 || receiver_org (8 bytes))

Frames
------
::

    header = version (1) || task_id (32) || sender_org (8) || receiver_org (8)
             || seq (8) || flags (1)
    frame  = header || AES-GCM(key(sender -> receiver), nonce = 4 zero bytes || seq,
                               plaintext = chunk, aad = header)

All integers are big-endian; ``seq`` counts the frames of one direction from 0. ``flags`` bit 0
marks the last chunk of a message, bit 1 an (authenticated) close, bit 2 the hello. A message is
cut into chunks of at most ``chunk_size`` bytes (1 MiB by default; an empty message is one empty
chunk) and reassembled by the receiver, which accepts only the frame with the next expected
``seq`` that authenticates, and drops any other. Messages are limited to ``max_message_size``
bytes (2 GiB by default) on both ends.

Hello: an end may open its direction with an empty hello frame (``seq`` 0, flag bit 2) before
any message; it is accepted only as the first frame and is not part of any message or of the
transcript. :meth:`SecureChannel.greet` sends it and :meth:`SecureChannel.wait_for_peer` waits for
the peer's, so both ends of a task know the other has its input loaded and its channel open before
the protocol (and its timeouts and timing) starts. Nodes always greet; the hello carries nothing
secret and proves only that the peer's node key holder opened this channel.

Because the key is fixed by (task, sender, receiver) and the nonce by ``seq``, a task must carry
**at most one channel per ordered pair of organisations**: reopening a channel for the same task
would reuse nonces. A re-run needs a new task id.

Wires
-----
A :class:`Wire` moves opaque frames. :class:`HttpWire` streams them, length-prefixed, in the body
of one long-lived POST to the peer's ``/api/v1/peer/frames`` (see :func:`receive_stream`) and
reads the ones addressed to us from the node's :class:`Mailbox`; :class:`MemoryWire` pairs connect
two channels in one process (tests).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import queue
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privledger.protocols.channel import (
    Channel,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    Side,
)

logger = logging.getLogger(__name__)

VERSION = 1
HEADER = struct.Struct(">B32sQQQB")
HEADER_SIZE = HEADER.size
TAG_SIZE = 16
FLAG_LAST = 0x01
FLAG_CLOSE = 0x02
FLAG_HELLO = 0x04
_VALID_FLAGS = frozenset({0, FLAG_LAST, FLAG_CLOSE, FLAG_HELLO})
KEY_SIZE = 32
PUBLIC_KEY_SIZE = 32
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 8 << 20
MAX_FRAME_SIZE = HEADER_SIZE + MAX_CHUNK_SIZE + TAG_SIZE
DEFAULT_MAX_MESSAGE_SIZE = 2 << 30
FRAMES_PATH = "/api/v1/peer/frames"
KDF_INFO_PREFIX = b"privledger/channel/v1"

STREAM_LENGTH = struct.Struct(">I")
_STREAM_HEADERS = {"Content-Type": "application/octet-stream"}
_MAX_BACKOFF_S = 1.0
_CLOSED_POLL_S = 0.05


class ChannelTampered(ChannelError):
    """The authenticated peer broke the channel's rules (e.g. closed inside a message, or sent
    a second hello); the channel is unusable."""


class MessageTooLarge(ChannelError):
    """A message exceeds the channel's size limit."""


class PeerUnreachable(ChannelError):
    """A frame could not be delivered to the peer node."""


class MailboxFull(RuntimeError):
    """The mailbox holds as many frames as it may; the sender should retry later."""


class NotExpected(MailboxFull):
    """No channel of this node waits for frames on the frame's route (task, sender): the task
    is not (or not yet) one this node runs with that sender. Retried like a full mailbox, for
    a peer that opened its end first; nothing of the frame is kept meanwhile."""


class FrameTooLarge(ValueError):
    """A frame in a stream declares more bytes than the receiving node accepts."""


def _check_uint(name: str, value: int, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer in [0, 2**{bits}), got {value!r}")


def _check_ids(task_id: int, our_org: int, peer_org: int) -> None:
    _check_uint("task_id", task_id, 256)
    _check_uint("our_org", our_org, 64)
    _check_uint("peer_org", peer_org, 64)
    if our_org == peer_org:
        raise ValueError(f"a channel needs two different organisations, got {our_org} twice")


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The clear-text, authenticated header of a frame."""

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


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """The two AES-256-GCM keys of one end: ``send`` seals our frames, ``recv`` opens the peer's."""

    send: bytes = field(repr=False)
    recv: bytes = field(repr=False)


def _shared_secret(our_key: X25519PrivateKey, peer_public_key: bytes) -> bytes:
    if len(peer_public_key) != PUBLIC_KEY_SIZE:
        raise ValueError(
            f"peer public key must be {PUBLIC_KEY_SIZE} bytes, got {len(peer_public_key)}"
        )
    try:
        shared = our_key.exchange(X25519PublicKey.from_public_bytes(bytes(peer_public_key)))
    except ValueError as exc:
        raise ValueError("peer public key is a low-order point: no shared secret") from exc
    # The backend already refuses this; checked here so the guarantee does not rest on it.
    if shared == bytes(len(shared)):
        raise ValueError("X25519 gave an all-zero shared secret: peer public key refused")
    return shared


def _direction_key(shared: bytes, task_id: int, sender_org: int, receiver_org: int) -> bytes:
    info = KDF_INFO_PREFIX + sender_org.to_bytes(8, "big") + receiver_org.to_bytes(8, "big")
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=KEY_SIZE, salt=task_id.to_bytes(32, "big"), info=info
    )
    return hkdf.derive(shared)


def derive_channel_keys(
    *,
    task_id: int,
    our_org: int,
    peer_org: int,
    our_key: X25519PrivateKey,
    peer_public_key: bytes,
) -> ChannelKeys:
    """The keys of our end of the channel of ``task_id`` with ``peer_org`` (see module docs)."""
    _check_ids(task_id, our_org, peer_org)
    shared = _shared_secret(our_key, peer_public_key)
    return ChannelKeys(
        send=_direction_key(shared, task_id, our_org, peer_org),
        recv=_direction_key(shared, task_id, peer_org, our_org),
    )


def _nonce(seq: int) -> bytes:
    return bytes(4) + seq.to_bytes(8, "big")


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class Wire(abc.ABC):
    """Moves opaque frames between the two ends of one channel; knows nothing of their content."""

    @abc.abstractmethod
    def send_frame(self, frame: bytes) -> None:
        """Hand one frame to the peer; raise :class:`ChannelError` when that is impossible."""

    @abc.abstractmethod
    def recv_frame(self, timeout: float | None) -> bytes:
        """The next frame from the peer; raise ``ChannelTimeout`` or ``ChannelClosed``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop using the wire; idempotent."""

    def connect(self) -> None:  # noqa: B027 -- a wire with nothing to set up
        """Set up the way to the peer ahead of the first frame (optional; idempotent)."""

    def flush(self) -> None:  # noqa: B027 -- a wire that hands frames over synchronously
        """Wait until every frame sent so far has left this process."""

    def confirm(self) -> None:  # noqa: B027 -- a wire that hands frames over synchronously
        """After ``close``: wait until the peer has taken every frame sent, raising
        :class:`ChannelError` if it has not (a wire that delivers synchronously has no wait)."""


class MemoryWire(Wire):
    """A wire over two in-process queues; :func:`memory_wire_pair` connects two of them."""

    def __init__(self, inbox: queue.Queue[bytes], outbox: queue.Queue[bytes]) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False

    def send_frame(self, frame: bytes) -> None:
        if self._closed:
            raise ChannelClosed("wire is closed")
        self._outbox.put(bytes(frame))

    def recv_frame(self, timeout: float | None) -> bytes:
        if self._closed:
            raise ChannelClosed("wire is closed")
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise ChannelTimeout(f"no frame within {timeout} s") from None

    def close(self) -> None:
        self._closed = True


def memory_wire_pair() -> tuple[MemoryWire, MemoryWire]:
    """Two connected in-process wires."""
    first_to_second: queue.Queue[bytes] = queue.Queue()
    second_to_first: queue.Queue[bytes] = queue.Queue()
    return (
        MemoryWire(inbox=second_to_first, outbox=first_to_second),
        MemoryWire(inbox=first_to_second, outbox=second_to_first),
    )


class SecureChannel(Channel):
    """One end of an authenticated, encrypted channel over a :class:`Wire` (see module docs).

    ``send`` and ``recv`` may run in different threads; each is serialised on its own. A timeout
    in ``recv`` is harmless (a partly received message is kept); any other failure is final.
    """

    def __init__(
        self,
        *,
        side: Side,
        wire: Wire,
        keys: ChannelKeys,
        task_id: int,
        our_org: int,
        peer_org: int,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        super().__init__(side)
        _check_ids(task_id, our_org, peer_org)
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in [1, {MAX_CHUNK_SIZE}], got {chunk_size}")
        if max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0, got {max_message_size}")
        self._wire = wire
        self._sealer = AESGCM(keys.send)
        self._opener = AESGCM(keys.recv)
        self._task_id = task_id
        self._our_org = our_org
        self._peer_org = peer_org
        self._chunk_size = chunk_size
        self._max_message_size = max_message_size
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._send_seq = 0
        self._recv_seq = 0
        self._partial = bytearray()  # the chunks so far of a message of several frames
        self._partial_frames = 0
        self._closed = False
        self._peer_closed = False
        self._peer_greeted = False
        self._failure: ChannelError | None = None
        self.dropped = 0  # frames that did not authenticate as the next one

    def close(self) -> None:
        """Tell the peer (best effort, unless the channel failed) and stop; idempotent."""
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
            if self._failure is None:
                try:
                    self._wire.send_frame(self._seal(b"", FLAG_CLOSE))
                except ChannelError as exc:
                    logger.debug("close frame of task %d not delivered: %s", self._task_id, exc)
            self._wire.close()

    def abandon(self) -> None:
        """Stop without a close frame, e.g. when the task failed here: the peer learns it from
        the failure on chain rather than as a close, which it would record as its own failure."""
        with self._send_lock:
            if not self._closed:
                self._closed = True
                self._wire.close()

    def greet(self) -> None:
        """Send our hello: must come before any message (see module docs)."""
        with self._send_lock:
            self._check_usable()
            if self._send_seq != 0:
                raise ChannelError("the hello must be the first frame of the channel")
            self._send_frame(b"", FLAG_HELLO)
            try:  # on its way before this thread turns to work that may hold the GIL
                self._wire.flush()
            except ChannelError as exc:
                raise self._fail(exc) from exc

    def wait_for_peer(self, timeout: float | None) -> None:
        """Wait for the peer's hello, which must be its first frame; ``ChannelTimeout`` if it
        does not come in time (the peer's node has not started the task)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._recv_lock:
            self._check_usable()
            if self._peer_greeted:
                return
            if self._recv_seq != 0:
                raise ChannelError("the peer's hello can only be awaited before any message")
            opened = None
            while opened is None:
                opened = self._open(self._wire.recv_frame(_remaining(deadline)))
            header, chunk = opened
            if header.flags != FLAG_HELLO or chunk:
                raise self._fail(ChannelTampered("the peer's first frame is not its hello"))
            self._peer_greeted = True

    def connect(self) -> None:
        """Open the wire to the peer now, e.g. while this node still loads its input, so that
        the hello and the first messages travel on a connection that is already up."""
        self._wire.connect()

    def finish(self) -> None:
        """Close after the protocol succeeded, making sure the peer got every frame we sent
        (``PeerUnreachable`` if not): the caller may then act on the result, e.g. anchor it."""
        self.close()
        self._check_failed()
        self._wire.confirm()

    def _send_raw(self, payload: bytes) -> None:
        if len(payload) > self._max_message_size:
            raise MessageTooLarge(
                f"message of {len(payload)} bytes exceeds the limit of {self._max_message_size}"
            )
        view = memoryview(payload)
        with self._send_lock:
            self._check_usable()
            for start in range(0, max(len(view), 1), self._chunk_size):
                end = start + self._chunk_size
                self._send_frame(view[start:end], FLAG_LAST if end >= len(view) else 0)

    def _send_frame(self, chunk: bytes | memoryview, flags: int) -> None:
        try:
            self._wire.send_frame(self._seal(chunk, flags))
        except ChannelError as exc:
            # Delivery is uncertain and a message may be half sent: no later frame can follow.
            raise self._fail(exc) from exc

    def _seal(self, chunk: bytes | memoryview, flags: int) -> bytes:
        """The next frame; its sequence number (hence nonce) is used up even if never sent."""
        seq = self._send_seq
        self._send_seq += 1
        header = FrameHeader(self._task_id, self._our_org, self._peer_org, seq, flags).pack()
        return header + self._sealer.encrypt(_nonce(seq), chunk, header)

    def _recv_raw(self, timeout: float | None) -> bytes | bytearray:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._recv_lock:
            while True:
                self._check_usable()
                if self._peer_closed:
                    raise ChannelClosed("peer closed the channel")
                message = self._accept(self._wire.recv_frame(_remaining(deadline)))
                if message is not None:
                    return message

    def _accept(self, frame: bytes) -> bytes | bytearray | None:
        """Take one frame; the whole message once its last chunk is in, else ``None``."""
        opened = self._open(frame)
        if opened is None:
            return None
        header, chunk = opened
        if header.flags == FLAG_HELLO:
            if header.seq != 0 or chunk:
                raise self._fail(ChannelTampered("a hello after the first frame, or not empty"))
            self._peer_greeted = True
            return None
        if header.flags == FLAG_CLOSE:
            if self._partial_frames:
                raise self._fail(ChannelTampered("peer closed the channel inside a message"))
            self._peer_closed = True
            raise ChannelClosed("peer closed the channel")
        if len(self._partial) + len(chunk) > self._max_message_size:
            raise self._fail(
                MessageTooLarge(f"incoming message exceeds the limit of {self._max_message_size}")
            )
        if header.flags & FLAG_LAST and not self._partial_frames:
            return chunk  # a message of one frame
        # Assembled in place: the buffer grows (realloc, not a copy, for large ones) chunk by
        # chunk, so a message never exists twice, as chunks and as their join, in memory.
        self._partial += chunk
        self._partial_frames += 1
        if not header.flags & FLAG_LAST:
            return None
        message, self._partial, self._partial_frames = self._partial, bytearray(), 0
        return message

    def _open(self, frame: bytes) -> tuple[FrameHeader, bytes] | None:
        """The header and chunk of ``frame`` if it authenticates as the frame that must come
        next; ``None`` (dropped, counted) for anything else: whoever can reach the node's frame
        endpoint can post such a frame, and must not be able to end the channel with it."""
        try:
            header = FrameHeader.parse(frame)
        except ValueError as exc:
            self._drop(f"malformed frame: {exc}")
            return None
        route = (header.task_id, header.sender_org, header.receiver_org)
        if route != (self._task_id, self._peer_org, self._our_org):
            self._drop(f"frame of another channel (task, from, to) {route}")
            return None
        if header.seq != self._recv_seq:
            self._drop(f"replayed or reordered: expected seq {self._recv_seq}, got {header.seq}")
            return None
        view = memoryview(frame)
        try:
            chunk = self._opener.decrypt(_nonce(header.seq), view[HEADER_SIZE:], view[:HEADER_SIZE])
        except InvalidTag:
            self._drop("frame failed authentication: forged, altered or wrong key")
            return None
        self._recv_seq += 1
        return header, chunk

    def _drop(self, why: str) -> None:
        self.dropped += 1
        log = logger.warning if self.dropped == 1 else logger.debug  # one warning per channel
        log("task %d: dropped a frame from org %d (%s)", self._task_id, self._peer_org, why)

    def _check_usable(self) -> None:
        if self._closed:
            raise ChannelClosed("channel is closed")
        self._check_failed()

    def _check_failed(self) -> None:
        if self._failure is not None:
            raise type(self._failure)(f"channel failed earlier and is unusable: {self._failure}")

    def _fail(self, error: ChannelError) -> ChannelError:
        """Make the channel unusable from now on; returns ``error`` for the caller to raise."""
        if self._failure is None:
            self._failure = error
            logger.warning(
                "channel of task %d between orgs %d and %d failed closed: %s",
                self._task_id,
                self._our_org,
                self._peer_org,
                error,
            )
        return error


def open_channel(
    *,
    task_id: int,
    our_org: int,
    peer_org: int,
    our_key: X25519PrivateKey,
    peer_public_key: bytes,
    wire: Wire,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> SecureChannel:
    """Our end of the channel of ``task_id`` with ``peer_org``; the lower org id is side ``"a"``."""
    keys = derive_channel_keys(
        task_id=task_id,
        our_org=our_org,
        peer_org=peer_org,
        our_key=our_key,
        peer_public_key=peer_public_key,
    )
    return SecureChannel(
        side="a" if our_org < peer_org else "b",
        wire=wire,
        keys=keys,
        task_id=task_id,
        our_org=our_org,
        peer_org=peer_org,
        chunk_size=chunk_size,
        max_message_size=max_message_size,
    )


_Route = tuple[int, int, int]


class Mailbox:
    """A node's thread-safe inbox of channel frames, queued by (task, sender, receiver).

    Frames are queued only on a route a channel of this node has opened (:meth:`expect`, which
    :class:`HttpWire` calls): a task this node runs, from that task's peer. A frame on any other
    route raises :class:`NotExpected`, a kind of :class:`MailboxFull`: the frame stream waits
    for the route (a peer may open its end first) and answers 429 if it never opens; nothing of
    the frame is kept. Queues are bounded so that no one can exhaust memory: at most
    ``max_frames_per_queue`` frames per queue and ``max_total_bytes`` overall, beyond which
    :meth:`deliver` raises :class:`MailboxFull` (answer 429; :class:`HttpWire` retries). Frames
    arriving for a task already discarded (e.g. a late close frame) are dropped; the last
    ``finished_tasks_kept`` tasks are remembered. ``local_org``, when given, refuses frames
    addressed to any other organisation.
    """

    def __init__(
        self,
        *,
        local_org: int | None = None,
        max_frames_per_queue: int = 64,
        max_total_bytes: int = 256 << 20,
        finished_tasks_kept: int = 4096,
    ) -> None:
        if max_frames_per_queue < 1 or max_total_bytes < MAX_FRAME_SIZE:
            raise ValueError(
                "max_frames_per_queue must be >= 1 and max_total_bytes >= one maximal frame"
            )
        self._local_org = local_org
        self._max_frames = max_frames_per_queue
        self._max_bytes = max_total_bytes
        self._finished_kept = finished_tasks_kept
        self._queues: dict[_Route, deque[bytes]] = {}
        self._expected: set[tuple[int, int]] = set()  # (task, sender) of the open channels
        self._finished: OrderedDict[int, None] = OrderedDict()
        self._total_bytes = 0
        self._changed = threading.Condition()

    def deliver(self, frame: bytes) -> None:
        """Queue ``frame``; ``ValueError`` when malformed, :class:`MailboxFull` when full."""
        header = FrameHeader.parse(frame)
        if self._local_org is not None and header.receiver_org != self._local_org:
            raise ValueError(
                f"frame is for organisation {header.receiver_org}, this node is {self._local_org}"
            )
        route = (header.task_id, header.sender_org, header.receiver_org)
        with self._changed:
            if header.task_id in self._finished:
                logger.debug("dropped a frame for finished task %d", header.task_id)
                return
            if (header.task_id, header.sender_org) not in self._expected:
                raise NotExpected(
                    f"no channel for task {header.task_id} with org {header.sender_org} here"
                )
            waiting = len(self._queues.get(route, ()))
            if waiting >= self._max_frames:
                raise MailboxFull(f"{waiting} frames already wait for task {header.task_id}")
            if self._total_bytes + len(frame) > self._max_bytes:
                raise MailboxFull(f"mailbox holds {self._total_bytes} bytes, near its limit")
            self._queues.setdefault(route, deque()).append(bytes(frame))
            self._total_bytes += len(frame)
            self._changed.notify_all()

    def expect(self, task_id: int, sender_org: int) -> None:
        """Accept frames of ``task_id`` from ``sender_org`` from now on (until :meth:`discard`)."""
        with self._changed:
            if task_id not in self._finished:
                self._expected.add((task_id, sender_org))

    def take(
        self, task_id: int, sender_org: int, receiver_org: int, timeout: float | None
    ) -> bytes:
        """The oldest frame of the route, waiting up to ``timeout``; else ``ChannelTimeout``, or
        ``ChannelClosed`` once the task is discarded."""
        route = (task_id, sender_org, receiver_org)
        with self._changed:
            arrived = self._changed.wait_for(
                lambda: route in self._queues or task_id in self._finished, timeout
            )
            if not arrived:
                raise ChannelTimeout(
                    f"no frame from org {sender_org} for task {task_id} within {timeout} s"
                )
            if route not in self._queues:
                raise ChannelClosed(f"task {task_id} was closed on this node")
            pending = self._queues[route]
            frame = pending.popleft()
            if not pending:
                del self._queues[route]
            self._total_bytes -= len(frame)
            return frame

    def discard(self, task_id: int) -> None:
        """Drop every frame of a finished task, and any that arrives for it later; whoever
        waits for one of its frames gets ``ChannelClosed``."""
        with self._changed:
            for route in [route for route in self._queues if route[0] == task_id]:
                self._total_bytes -= sum(len(frame) for frame in self._queues.pop(route))
            self._expected = {key for key in self._expected if key[0] != task_id}
            self._finished[task_id] = None
            while len(self._finished) > self._finished_kept:
                self._finished.popitem(last=False)
            self._changed.notify_all()


class HttpWire(Wire):
    """Frames out over one streaming HTTP POST to the peer node, frames in from our
    :class:`Mailbox`.

    :meth:`connect` (or else the first frame) opens ``POST {peer}/api/v1/peer/frames`` with a
    chunked body that a sender thread feeds for the life of the channel: each frame as a 4-byte
    big-endian length and the frame (see :func:`receive_stream`). ``send_frame`` only queues (at
    most ``queue_frames`` frames, then it blocks: back-pressure from the peer's mailbox through
    TCP), so the protocol computes its next message while this one is on the wire; :meth:`flush`
    waits until the queued frames are written to the connection. :meth:`close` ends the body
    and waits for the peer's answer, which counts the frames it queued; :meth:`confirm` raises
    unless that count is every frame sent.

    Opening the stream is retried with exponential backoff while the connection cannot be made
    and no frame has left (at most ``connect_attempts`` tries, within ``send_timeout``). Once a
    frame has left, any failure is final -- a retry could duplicate frames -- and the next
    ``send_frame`` (or ``confirm``) raises :class:`PeerUnreachable`.
    """

    def __init__(
        self,
        peer_endpoint: str,
        client: httpx.Client,
        mailbox: Mailbox,
        *,
        task_id: int,
        our_org: int,
        peer_org: int,
        send_timeout: float = 30.0,
        connect_attempts: int = 4,
        backoff: float = 0.05,
        queue_frames: int = 8,
    ) -> None:
        _check_ids(task_id, our_org, peer_org)
        if send_timeout <= 0 or connect_attempts < 1 or backoff <= 0 or queue_frames < 1:
            raise ValueError(
                "send_timeout and backoff must be > 0, connect_attempts and queue_frames >= 1"
            )
        self._url = peer_endpoint.rstrip("/") + FRAMES_PATH
        self._client = client
        self._mailbox = mailbox
        self._route = (task_id, peer_org, our_org)
        mailbox.expect(task_id, peer_org)  # the peer's frames for this channel may come in now
        self._send_timeout = send_timeout
        self._connect_attempts = connect_attempts
        self._backoff = backoff
        self._outgoing: queue.Queue[bytes | None] = queue.Queue(maxsize=queue_frames)
        self._sender: threading.Thread | None = None
        self._frames_sent = 0
        self._frames_left = 0  # handed to the HTTP body
        self._frames_written = 0  # written to the socket (the body asked for the next one)
        self._written = threading.Condition()
        self._frames_accepted: int | None = None  # the peer's count once the stream ended
        self._failure: ChannelError | None = None
        self._closed = False

    def send_frame(self, frame: bytes) -> None:
        if self._closed:
            raise ChannelClosed("wire is closed")
        self._raise_failure()
        self.connect()
        deadline = time.monotonic() + self._send_timeout
        while True:
            try:
                self._outgoing.put(frame, timeout=0.05)
                break
            except queue.Full:
                self._raise_failure()
                if time.monotonic() > deadline:
                    raise PeerUnreachable(
                        f"peer at {self._url} took no frame for {self._send_timeout} s"
                    ) from None
        self._frames_sent += 1

    def connect(self) -> None:
        """Start the sender thread, which opens the POST (headers only until the first frame)."""
        if self._sender is None and not self._closed:
            self._sender = threading.Thread(target=self._stream, name="wire", daemon=True)
            self._sender.start()

    def flush(self) -> None:
        """Wait (at most ``send_timeout``) until the frames sent so far are written to the
        connection; :class:`PeerUnreachable` if the stream failed or they were not."""
        target = self._frames_sent
        with self._written:
            done = self._written.wait_for(
                lambda: self._frames_written >= target or self._failure is not None,
                self._send_timeout,
            )
        self._raise_failure()
        if not done:
            raise PeerUnreachable(f"peer at {self._url} took no frame for {self._send_timeout} s")

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise type(self._failure)(str(self._failure))

    def _body(self) -> Iterator[bytes]:
        while True:
            if self._frames_written != self._frames_left:
                with self._written:
                    self._frames_written = self._frames_left
                    self._written.notify_all()
            try:
                frame = self._outgoing.get(timeout=_CLOSED_POLL_S)
            except queue.Empty:
                if self._closed:  # closed while the queue was full: the end marker is missing
                    return
                continue
            if frame is None:
                return
            self._frames_left += 1
            yield STREAM_LENGTH.pack(len(frame))
            yield frame  # not concatenated: frames are up to a MiB

    def _stream(self) -> None:
        """The sender thread: one POST whose body is every frame, until ``close``."""
        deadline = time.monotonic() + self._send_timeout
        delay = self._backoff
        for attempt in range(1, self._connect_attempts + 1):
            try:
                response = self._client.post(
                    self._url,
                    content=self._body(),
                    headers=_STREAM_HEADERS,
                    timeout=httpx.Timeout(self._send_timeout),
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if self._frames_left or attempt == self._connect_attempts:
                    break
                if time.monotonic() + delay > deadline:
                    break
                time.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
                continue
            except Exception as exc:  # e.g. httpx.HTTPError, or the node closed its client
                reason = f"frame delivery failed: {exc!r}"
                break
            if response.is_success:
                self._frames_accepted = int(response.json().get("frames", -1))
                return
            reason = f"peer refused the frames: HTTP {response.status_code} {response.text[:200]}"
            break
        with self._written:
            self._failure = PeerUnreachable(f"peer unreachable at {self._url}: {reason}")
            self._written.notify_all()
        self._drain()

    def _drain(self) -> None:
        """Unblock a sender waiting on the full queue after the stream died."""
        try:
            while True:
                self._outgoing.get_nowait()
        except queue.Empty:
            pass

    def recv_frame(self, timeout: float | None) -> bytes:
        if self._closed:
            raise ChannelClosed("wire is closed")
        return self._mailbox.take(*self._route, timeout)

    def close(self) -> None:
        """End the stream once the queued frames have left; does not wait (see :meth:`confirm`)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(queue.Full):  # else the body sees ``_closed`` once drained
            self._outgoing.put_nowait(None)

    def confirm(self) -> None:
        """Wait (at most ``send_timeout``) for the peer's answer to the ended stream; raise
        :class:`PeerUnreachable` unless it counts every frame sent."""
        if self._sender is not None:
            self._sender.join(self._send_timeout)
        self._raise_failure()
        if self._frames_accepted != self._frames_sent:
            got = "no answer" if self._frames_accepted is None else self._frames_accepted
            raise PeerUnreachable(
                f"peer at {self._url} confirmed {got} of the {self._frames_sent} frames sent"
            )


async def receive_stream(
    chunks: AsyncIterator[bytes],
    mailbox: Mailbox,
    *,
    max_frame_bytes: int,
    full_wait_s: float,
) -> int:
    """Queue every frame of a frame stream (each a 4-byte big-endian length, then the frame) in
    ``mailbox``; the number of frames. While the mailbox is full it stops reading, which slows
    the sender through TCP, for at most ``full_wait_s`` seconds per frame before
    :class:`MailboxFull`. ``ValueError`` for a malformed stream or frame, :class:`FrameTooLarge`
    for a frame over ``max_frame_bytes``."""
    buffer = bytearray()
    count = 0
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= STREAM_LENGTH.size:
            (size,) = STREAM_LENGTH.unpack_from(buffer)
            if size > max_frame_bytes:
                raise FrameTooLarge(f"a frame is at most {max_frame_bytes} bytes, not {size}")
            end = STREAM_LENGTH.size + size
            if len(buffer) < end:
                break
            with memoryview(buffer) as view:
                frame = bytes(view[STREAM_LENGTH.size : end])
            del buffer[:end]
            await _deliver_when_room(mailbox, frame, full_wait_s)
            count += 1
    if buffer:
        raise ValueError(f"the stream ends inside a frame ({len(buffer)} bytes left over)")
    return count


async def _deliver_when_room(mailbox: Mailbox, frame: bytes, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    delay = 0.001
    while True:
        try:
            mailbox.deliver(frame)
            return
        except MailboxFull:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
