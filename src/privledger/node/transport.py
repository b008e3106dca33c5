"""Authenticated, encrypted, forward-secret peer channel between organisation nodes.

Security model
--------------
* Peers are **semi-honest**: they run the protocol as written but may try to learn more from what
  they see. The channel authenticates *which node* sent a message; it does not make a peer honest.
* The **network is hostile**: an attacker can read, drop, delay, replay, reorder and forge frames,
  and can post arbitrary bytes to a node's frame endpoint. Against it the channel gives
  confidentiality and integrity of every message, and delivery in order or not at all. A frame
  is accepted only if it authenticates as the *next* frame of its channel; a replayed,
  reordered, forged, altered, truncated or misrouted frame -- handshake messages included -- is
  **dropped and counted, never fatal**, so an outsider who can reach a node cannot stop its
  tasks by posting frames. Only what the authenticated peer itself sends can fail the channel
  (e.g. a close inside a message), after which every later call raises. The node's
  :class:`~privledger.node.mailbox.Mailbox` queues frames only for channels this node has
  opened. The channel cannot stop an attacker from dropping frames (the receiver then sees
  :class:`~privledger.protocols.channel.ChannelTimeout`) or from slowing a task by flooding its
  frame route, and it does not hide message sizes or timing.
* Identity: each organisation has a static X25519 node key whose public half is registered on
  chain. Each channel runs a **Noise_KK_25519_AESGCM_SHA256** handshake (:mod:`.noise`) over
  both static keys with a fresh ephemeral key on each end, so the channel's keys are
  **forward secret** (whoever later steals a node key cannot open recorded traffic) and **new
  for every channel**: (key, nonce) pairs never repeat, even when a task's channel is opened
  again, e.g. by a node whose home (database included) was recreated. Nonce safety rests on no
  stored state.
* Replayed handshakes: a recorded first handshake message can be replayed to the responder, who
  cannot tell it from a fresh one and answers it, but no one without the initiator's ephemeral
  private key (dropped after the handshake) can derive the keys: the attacker can neither read
  nor send a single transport frame, and frames recorded from an earlier channel never
  authenticate in a new one. The responder trusts a handshake only once the initiator's key
  confirmation authenticates under it, and answers every distinct hello until then, so a replay
  cannot crowd out the genuine hello either. Holding a node's static key lets one impersonate
  peers *to that node* (key-compromise impersonation, inherent to KK); it does not open past
  channels.

Handshake
---------
The end with the lower organisation id is the initiator (side ``"a"``). Both ends use the prologue
``b"privledger/channel/v2" || task_id (32 bytes) || initiator_org (8) || responder_org (8)``
(integers big-endian), so a handshake binds the task and both organisations: a hello of another
task or pair never authenticates. Both handshake payloads are empty. Three frames, each with flag
``HELLO``, open the channel::

    1. initiator -> responder, seq 0:  header || e_i (32) || tag (16)       Noise -> e, es, ss
    2. responder -> initiator, seq 0:  header || e_r (32) || tag (16)       Noise <- e, ee, se
    3. initiator -> responder, seq 1:  header || tag (16)                   key confirmation

Frame 3 is the initiator's first transport frame (below) with an empty chunk. :meth:`greet` sends
frame 1 (the responder's hello is an answer and cannot go first); :meth:`wait_for_peer` does the
rest: the initiator reads frame 2 and sends frame 3, the responder answers each distinct hello
that authenticates with a frame 2 of a fresh handshake (at most ``MAX_PENDING_HANDSHAKES``) and
keeps the keys of the one under which frame 3 authenticates. A node greets all its peers before
it waits for any, so several channels of one task never wait on each other. Once it has returned
on both ends, both know the other has its input loaded and its channel open before the protocol
(and its timeouts and timing) starts. Messages can be sent only after the handshake; hellos are
not part of any message or of the transcript.

Frames
------
See :mod:`.frames` for the header. After the handshake, Noise's ``Split`` gives one
:class:`~privledger.node.noise.CipherState` per direction, and every later frame is::

    frame = header || AES-GCM(k, nonce = 4 zero bytes || (seq - 1) as 8 bytes, chunk, aad = header)

i.e. the direction's ``EncryptWithAd(header, chunk)``: ``seq`` counts the frames of one direction
from 0 (the hello), and the cipher's nonce counter is ``seq - 1``. ``flags`` bit 0 marks the
last chunk of a message, bit 1 an (authenticated) close, bit 2 the key confirmation. A message
is cut into chunks of at most ``chunk_size`` bytes (1 MiB by default; an empty message is one
empty chunk -- larger than Noise's 65535-byte messages, which AES-GCM allows) and reassembled by
the receiver, which accepts only the frame with the next expected ``seq`` that authenticates,
and drops any other. Messages are limited to ``max_message_size`` bytes (2 GiB by default) on
both ends. ``docs/peer-channel.md`` and the vectors in ``tests/node/vectors/`` give the
byte-exact format for other implementations.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privledger.node.frames import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    FLAG_CLOSE,
    FLAG_HELLO,
    FLAG_LAST,
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    MAX_FRAME_SIZE,
    VERSION,
    FrameHeader,
    check_ids,
)
from privledger.node.mailbox import Mailbox, MailboxFull, NotExpected
from privledger.node.noise import (
    DH_LEN,
    TAG_SIZE,
    CipherState,
    HandshakeFailed,
    HandshakeState,
    TransportCiphers,
)
from privledger.node.wires import (
    FRAMES_PATH,
    STREAM_LENGTH,
    ForeignFrame,
    FrameTooLarge,
    HttpWire,
    MemoryWire,
    PeerUnreachable,
    Wire,
    memory_wire_pair,
    receive_stream,
)
from privledger.protocols.channel import Channel, ChannelClosed, ChannelError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "FLAG_CLOSE",
    "FLAG_HELLO",
    "FLAG_LAST",
    "FRAMES_PATH",
    "HEADER_SIZE",
    "MAX_CHUNK_SIZE",
    "MAX_FRAME_SIZE",
    "PROLOGUE_PREFIX",
    "STREAM_LENGTH",
    "TAG_SIZE",
    "VERSION",
    "ChannelTampered",
    "ForeignFrame",
    "FrameHeader",
    "FrameTooLarge",
    "HttpWire",
    "Mailbox",
    "MailboxFull",
    "MemoryWire",
    "MessageTooLarge",
    "NotExpected",
    "PeerUnreachable",
    "SecureChannel",
    "Wire",
    "channel_prologue",
    "memory_wire_pair",
    "open_channel",
    "receive_stream",
]

logger = logging.getLogger(__name__)

PROLOGUE_PREFIX = b"privledger/channel/v2"
# Distinct hellos a responder answers while it waits for a key confirmation: the genuine one and
# replays of the hellos of earlier channels of the same task and pair (there are few).
MAX_PENDING_HANDSHAKES = 8


class ChannelTampered(ChannelError):
    """The authenticated peer broke the channel's rules (e.g. closed inside a message, or sent
    a hello inside the transport); the channel is unusable."""


class MessageTooLarge(ChannelError):
    """A message exceeds the channel's size limit."""


def channel_prologue(task_id: int, initiator_org: int, responder_org: int) -> bytes:
    """The Noise prologue of the channel of ``task_id`` between the two organisations."""
    check_ids(task_id, initiator_org, responder_org)
    return (
        PROLOGUE_PREFIX
        + task_id.to_bytes(32, "big")
        + initiator_org.to_bytes(8, "big")
        + responder_org.to_bytes(8, "big")
    )


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class SecureChannel(Channel):
    """One end of an authenticated, encrypted channel over a :class:`Wire` (see module docs).

    ``send`` and ``recv`` may run in different threads; each is serialised on its own. A timeout
    in ``recv`` is harmless (a partly received message is kept); any other failure is final.
    """

    def __init__(
        self,
        *,
        wire: Wire,
        handshake: Callable[[], HandshakeState],
        task_id: int,
        our_org: int,
        peer_org: int,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        check_ids(task_id, our_org, peer_org)
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in [1, {MAX_CHUNK_SIZE}], got {chunk_size}")
        if max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0, got {max_message_size}")
        first = handshake()  # the initiator's; the responder's for the next hello it hears
        super().__init__("a" if first.initiator else "b")
        self._new_handshake = handshake
        self._handshake = first
        self._wire = wire
        self._pending: dict[bytes, TransportCiphers] = {}  # the responder's, by initiator's e
        self._sealer: CipherState | None = None  # set once the handshake is complete
        self._opener: CipherState | None = None
        self._task_id = task_id
        self._our_org = our_org
        self._peer_org = peer_org
        self._chunk_size = chunk_size
        self._max_message_size = max_message_size
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._greeted = False
        self._partial = bytearray()  # the chunks so far of a message of several frames
        self._partial_frames = 0
        self._closed = False
        self._peer_closed = False
        self._failure: ChannelError | None = None
        self.dropped = 0  # frames that did not authenticate as the next one
        self.handshake_hash: bytes | None = None  # Noise's h once the handshake is complete

    def close(self) -> None:
        """Tell the peer (best effort, unless the channel failed or never got its keys) and
        stop; idempotent."""
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
            if self._failure is None and self._sealer is not None:
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
        """Start the handshake: the initiator sends its hello now, the responder answers the
        initiator's in :meth:`wait_for_peer`. Once per channel, before any message."""
        with self._send_lock:
            self._check_usable()
            if self._greeted:
                raise ChannelError("the channel has already greeted its peer")
            self._greeted = True
            if self.side == "a":
                self._send_hello(self._handshake)

    def wait_for_peer(self, timeout: float | None) -> None:
        """Finish the handshake (see module docs); ``ChannelTimeout`` if it does not complete in
        time (the peer's node has not started the task). Any frame that does not authenticate as
        the handshake's next one is dropped meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._recv_lock:
            self._check_usable()
            if self._opener is not None:
                return
            if not self._greeted:
                raise ChannelError("greet() the peer before waiting for it")
            ciphers = None
            while ciphers is None:
                frame = self._wire.recv_frame(_remaining(deadline))
                if self.side == "a":
                    ciphers = self._hear_answer(frame)
                else:
                    ciphers = self._hear_initiator(frame)
            self.handshake_hash = ciphers.handshake_hash
            with self._send_lock:
                self._sealer, self._opener = ciphers.send, ciphers.recv
                if self.side == "a":  # key confirmation: the responder may now trust the keys
                    self._send_now(self._seal(b"", FLAG_HELLO))
            self._pending.clear()

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

    def _hear_answer(self, frame: bytes) -> TransportCiphers | None:
        """The initiator: the transport ciphers if ``frame`` is the responder's answer to our
        hello; else ``None`` (dropped: e.g. its answer to a replayed hello of ours)."""
        body = self._hello_body(frame)
        if body is None:
            return None
        if not self._read_hello(body):
            return None
        return self._handshake.split()

    def _read_hello(self, body: memoryview) -> bool:
        """Whether the handshake took the peer's hello message ``body`` (else it is dropped)."""
        try:
            self._handshake.read_message(body)
        except HandshakeFailed as exc:
            self._drop(f"hello refused: {exc}")
            return False
        return True

    def _hear_initiator(self, frame: bytes) -> TransportCiphers | None:
        """The responder: answer each distinct hello that authenticates (one of them may be a
        replay of an earlier channel's, indistinguishable until confirmed), and return the
        ciphers of the one whose key confirmation then authenticates."""
        header = self._route_header(frame)
        if header is None:
            return None
        if header.seq == 1 and header.flags == FLAG_HELLO:
            view = memoryview(frame)
            for ciphers in self._pending.values():
                try:
                    ciphers.recv.decrypt_with_ad(view[:HEADER_SIZE], view[HEADER_SIZE:])
                except InvalidTag:
                    continue
                return ciphers
            self._drop("key confirmation of no handshake of this channel")
            return None
        body = self._hello_body(frame, header)
        if body is None:
            return None
        ephemeral = bytes(body[:DH_LEN])
        if ephemeral in self._pending:
            self._drop("a hello answered already")
            return None
        if len(self._pending) >= MAX_PENDING_HANDSHAKES:
            self._drop(f"{MAX_PENDING_HANDSHAKES} hellos already wait for confirmation")
            return None
        if not self._read_hello(body):
            return None
        with self._send_lock:
            self._check_usable()
            self._send_hello(self._handshake)
        self._pending[ephemeral] = self._handshake.split()
        self._handshake = self._new_handshake()
        return None

    def _hello_body(self, frame: bytes, header: FrameHeader | None = None) -> memoryview | None:
        """The handshake message in ``frame`` if it is a hello of this channel, else dropped."""
        header = header or self._route_header(frame)
        if header is None:
            return None
        if header.seq != 0 or header.flags != FLAG_HELLO:
            self._drop(f"not a hello (seq {header.seq}, flags {header.flags:#04x}) before keys")
            return None
        return memoryview(frame)[HEADER_SIZE:]

    def _send_hello(self, handshake: HandshakeState) -> None:
        """Our handshake message as the hello frame. Called with the send lock held."""
        header = FrameHeader(self._task_id, self._our_org, self._peer_org, 0, FLAG_HELLO).pack()
        self._send_now(header + handshake.write_message())

    def _send_now(self, frame: bytes) -> None:
        """Send a frame of the handshake, on its way before this thread turns to work that may
        hold the GIL. Called with the send lock held."""
        try:
            self._wire.send_frame(frame)
            self._wire.flush()
        except ChannelError as exc:
            raise self._fail(exc) from exc

    def _send_raw(self, payload: bytes) -> None:
        if len(payload) > self._max_message_size:
            raise MessageTooLarge(
                f"message of {len(payload)} bytes exceeds the limit of {self._max_message_size}"
            )
        view = memoryview(payload)
        with self._send_lock:
            self._check_usable()
            self._check_keys(self._sealer)
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
        """The next transport frame; its nonce is used up even if it is never sent."""
        assert self._sealer is not None
        seq = self._sealer.n + 1  # the hello was frame 0
        header = FrameHeader(self._task_id, self._our_org, self._peer_org, seq, flags).pack()
        return header + self._sealer.encrypt_with_ad(header, chunk)

    def _recv_raw(self, timeout: float | None) -> bytes | bytearray:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._recv_lock:
            while True:
                self._check_usable()
                self._check_keys(self._opener)
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
        flags, chunk = opened
        if flags == FLAG_HELLO:
            raise self._fail(ChannelTampered("a hello inside the transport"))
        if flags == FLAG_CLOSE:
            if self._partial_frames:
                raise self._fail(ChannelTampered("peer closed the channel inside a message"))
            self._peer_closed = True
            raise ChannelClosed("peer closed the channel")
        if len(self._partial) + len(chunk) > self._max_message_size:
            raise self._fail(
                MessageTooLarge(f"incoming message exceeds the limit of {self._max_message_size}")
            )
        if flags & FLAG_LAST and not self._partial_frames:
            return chunk  # a message of one frame
        # Assembled in place: the buffer grows (realloc, not a copy, for large ones) chunk by
        # chunk, so a message never exists twice, as chunks and as their join, in memory.
        self._partial += chunk
        self._partial_frames += 1
        if not flags & FLAG_LAST:
            return None
        message, self._partial, self._partial_frames = self._partial, bytearray(), 0
        return message

    def _open(self, frame: bytes) -> tuple[int, bytes] | None:
        """The flags and chunk of ``frame`` if it authenticates as the transport frame that must
        come next; ``None`` (dropped, counted) for anything else: whoever can reach the node's
        frame endpoint can post such a frame, and must not be able to end the channel with it."""
        opener = self._opener
        assert opener is not None
        header = self._route_header(frame)
        if header is None:
            return None
        if header.seq != opener.n + 1:
            self._drop(f"replayed or reordered: expected seq {opener.n + 1}, got {header.seq}")
            return None
        view = memoryview(frame)
        try:
            chunk = opener.decrypt_with_ad(view[:HEADER_SIZE], view[HEADER_SIZE:])
        except InvalidTag:
            self._drop("frame failed authentication: forged, altered or from another channel")
            return None
        return header.flags, chunk

    def _route_header(self, frame: bytes) -> FrameHeader | None:
        """The header of ``frame`` if it parses and is on this channel's route, else dropped."""
        try:
            header = FrameHeader.parse(frame)
        except ValueError as exc:
            self._drop(f"malformed frame: {exc}")
            return None
        route = (header.task_id, header.sender_org, header.receiver_org)
        if route != (self._task_id, self._peer_org, self._our_org):
            self._drop(f"frame of another channel (task, from, to) {route}")
            return None
        return header

    def _drop(self, why: str) -> None:
        self.dropped += 1
        log = logger.warning if self.dropped == 1 else logger.debug  # one warning per channel
        log("task %d: dropped a frame from org %d (%s)", self._task_id, self._peer_org, why)

    def _check_keys(self, cipher: CipherState | None) -> None:
        if cipher is None:
            raise ChannelError("the handshake is not complete: greet() and wait_for_peer() first")

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
    """Our end of the channel of ``task_id`` with ``peer_org``; the lower org id is side ``"a"``,
    the handshake's initiator. ``ValueError`` for bad ids or a bad (e.g. low-order) peer key."""
    check_ids(task_id, our_org, peer_org)
    initiator = our_org < peer_org
    low, high = (our_org, peer_org) if initiator else (peer_org, our_org)
    handshake = partial(
        HandshakeState,
        initiator=initiator,
        static_key=our_key,
        remote_static=peer_public_key,
        prologue=channel_prologue(task_id, low, high),
    )
    return SecureChannel(
        wire=wire,
        handshake=handshake,
        task_id=task_id,
        our_org=our_org,
        peer_org=peer_org,
        chunk_size=chunk_size,
        max_message_size=max_message_size,
    )
