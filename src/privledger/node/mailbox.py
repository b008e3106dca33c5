"""A node's inbox of peer-channel frames, bounded and open only for the channels it runs.

Security model: only a consortium member's node can post frames to it, and only in its own
organisation's name (the frame route checks the stream's signature, ``node.wires``). The mailbox
keeps frames only on a route (task, sender, receiver) that one of this node's channels has opened,
in queues bounded per route, per sending organisation and in total, so no one can queue frames
ahead of a task, exhaust memory, or -- posting junk on the route of a task it takes part in that
this node is not reading yet -- hold more than half the room every other peer's frames need. It
checks no cryptography (the channel drops what does not authenticate).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict, deque

from privledger.node.frames import MAX_FRAME_SIZE, FrameHeader
from privledger.protocols.channel import ChannelClosed, ChannelTimeout

logger = logging.getLogger(__name__)


class MailboxFull(RuntimeError):
    """The mailbox holds as many frames as it may; the sender should retry later."""


class NotExpected(MailboxFull):
    """No channel of this node waits for frames on the frame's route (task, sender): the task
    is not (or not yet) one this node runs with that sender. Retried like a full mailbox, for
    a peer that opened its end first; nothing of the frame is kept meanwhile."""


_Route = tuple[int, int, int]


class Mailbox:
    """A node's thread-safe inbox of channel frames, queued by (task, sender, receiver).

    Frames are queued only on a route a channel of this node has opened (:meth:`expect`, which
    the channel's wire calls): a task this node runs, from that task's peer. A frame on any other
    route raises :class:`NotExpected`, a kind of :class:`MailboxFull`: the frame stream waits
    for the route (a peer may open its end first) and answers 429 if it never opens; nothing of
    the frame is kept. Queues are bounded so that no one can exhaust memory: at most
    ``max_frames_per_queue`` frames per queue, ``max_sender_bytes`` from one sending organisation
    (half the total, or one maximal frame if more, unless given) and ``max_total_bytes``
    overall, beyond which
    :meth:`deliver` raises :class:`MailboxFull` (answer 429; the sending wire retries). Frames
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
        max_sender_bytes: int | None = None,
        finished_tasks_kept: int = 4096,
    ) -> None:
        half = max(max_total_bytes // 2, MAX_FRAME_SIZE)
        per_sender = half if max_sender_bytes is None else max_sender_bytes
        if max_frames_per_queue < 1 or not MAX_FRAME_SIZE <= per_sender <= max_total_bytes:
            raise ValueError(
                "max_frames_per_queue must be >= 1, and max_sender_bytes and max_total_bytes at "
                "least one maximal frame, max_sender_bytes at most max_total_bytes"
            )
        self._local_org = local_org
        self._max_frames = max_frames_per_queue
        self._max_bytes = max_total_bytes
        self._max_sender_bytes = per_sender
        self._finished_kept = finished_tasks_kept
        self._queues: dict[_Route, deque[bytes]] = {}
        self._expected: set[tuple[int, int]] = set()  # (task, sender) of the open channels
        self._finished: OrderedDict[int, None] = OrderedDict()
        self._total_bytes = 0
        self._sender_bytes: Counter[int] = Counter()
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
            held = self._sender_bytes[header.sender_org]
            if held + len(frame) > self._max_sender_bytes:
                raise MailboxFull(f"mailbox holds {held} bytes from org {header.sender_org}")
            self._queues.setdefault(route, deque()).append(bytes(frame))
            self._total_bytes += len(frame)
            self._sender_bytes[header.sender_org] += len(frame)
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
            self._forget_bytes(sender_org, len(frame))
            return frame

    def reopen(self, task_ids: set[int] | frozenset[int]) -> None:
        """Forget that ``task_ids`` were finished here: a reorganisation took them back, and a
        new task may take one of their ids."""
        with self._changed:
            for task_id in task_ids:
                self._finished.pop(task_id, None)

    def discard(self, task_id: int) -> None:
        """Drop every frame of a finished task, and any that arrives for it later; whoever
        waits for one of its frames gets ``ChannelClosed``."""
        with self._changed:
            for route in [route for route in self._queues if route[0] == task_id]:
                self._forget_bytes(route[1], sum(len(frame) for frame in self._queues.pop(route)))
            self._expected = {key for key in self._expected if key[0] != task_id}
            self._finished[task_id] = None
            while len(self._finished) > self._finished_kept:
                self._finished.popitem(last=False)
            self._changed.notify_all()

    def _forget_bytes(self, sender_org: int, count: int) -> None:
        """Free ``count`` bytes of ``sender_org``'s (with the lock held)."""
        self._total_bytes -= count
        self._sender_bytes[sender_org] -= count
        if not self._sender_bytes[sender_org]:
            del self._sender_bytes[sender_org]
