"""Wires: how the peer channel's opaque frames travel between two nodes.

A :class:`Wire` moves frames and knows nothing of their content: confidentiality and integrity
are the channel's (:mod:`privledger.node.transport`). :class:`HttpWire` streams frames,
length-prefixed, in the body of one long-lived POST to the peer's ``/api/v1/peer/frames`` (read
there by :func:`receive_stream` into the node's :class:`~privledger.node.mailbox.Mailbox`) and
takes the frames addressed to us from our own mailbox. The node's HTTP client signs that POST for
its organisation (:class:`~privledger.node.peer_auth.SignedPeerCalls`), and the receiving node
keeps only frames in the signer's name, so no one else can fill the mailbox a task's frames need.
:class:`MemoryWire` pairs connect two channels in one process (tests).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import contextvars
import queue
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx

from privledger.node.endpoints import usable_endpoint
from privledger.node.frames import FrameHeader, check_ids
from privledger.node.mailbox import Mailbox, MailboxFull
from privledger.protocols.channel import ChannelClosed, ChannelError, ChannelTimeout

FRAMES_PATH = "/api/v1/peer/frames"
STREAM_LENGTH = struct.Struct(">I")
_MAX_BACKOFF_S = 1.0
_CLOSED_POLL_S = 0.05


class PeerUnreachable(ChannelError):
    """A frame could not be delivered to the peer node."""


class FrameTooLarge(ValueError):
    """A frame in a stream declares more bytes than the receiving node accepts."""


class ForeignFrame(ValueError):
    """A frame in a stream names a sender other than the organisation whose node sent the
    stream."""


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
        check_ids(task_id, our_org, peer_org)
        if send_timeout <= 0 or connect_attempts < 1 or backoff <= 0 or queue_frames < 1:
            raise ValueError(
                "send_timeout and backoff must be > 0, connect_attempts and queue_frames >= 1"
            )
        self._url = usable_endpoint(peer_endpoint) + FRAMES_PATH  # "": unreachable
        # the client's auth signs the stream for our organisation, addressed to the peer's
        self._headers = {
            "Content-Type": "application/octet-stream",
            "x-target-node-id": str(peer_org),
        }
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
            self._sender = threading.Thread(  # in the task's context: its lines name the task
                target=contextvars.copy_context().run,
                args=(self._stream,),
                name="wire",
                daemon=True,
            )
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
                    headers=self._headers,
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
    sender_org: int,
    max_frame_bytes: int,
    full_wait_s: float,
) -> int:
    """Queue every frame of a frame stream (each a 4-byte big-endian length, then the frame) in
    ``mailbox``; the number of frames. Every frame must name ``sender_org`` (the organisation
    that proved it sent the stream) as its sender, else :class:`ForeignFrame` before it is
    queued. While the mailbox is full it stops reading, which slows the sender through TCP, for
    at most ``full_wait_s`` seconds per frame before :class:`MailboxFull`. ``ValueError`` for a
    malformed stream or frame, :class:`FrameTooLarge` for a frame over ``max_frame_bytes``."""
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
            claimed = FrameHeader.parse(frame).sender_org
            if claimed != sender_org:
                raise ForeignFrame(
                    f"a frame in a stream of organisation {sender_org} names {claimed} as sender"
                )
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
