"""A provider's last messages leave only after it has anchored its result.

A requester learns its output from the providers' last messages. Sent before a provider's
anchor, they would open a window: the requester could fail the task on chain between receiving
them and that anchor and take its fee back (the ledger refuses a requester's ``failTask`` only
once a provider has anchored). So a provider's protocol talks through views of its channels
(:class:`LastMessages`) that hold every message it sends until it next receives, on any
channel -- a peer may need the message to answer -- or ends. What they hold when the protocol
ends is the provider's last burst: the worker anchors first (the transcript hash it anchors
already covers the held messages, which the views record as sent) and only then releases them.
A message sent while a receive waits goes out at once: a protocol may send from one thread
while another waits for the answer to it.

Some protocols give the requester its output, or part of it, before the provider can anchor: the
provider learns its own output after the requester's (an intersection revealed to both), or sends
the output in parts while it still receives (a bucketed PSI). Such a protocol says so on the
channel (:meth:`.Channel.delivering`) before those messages; when they would leave while the
protocol goes on, the node first records the delivery on the ledger (``recordDelivery``), which
binds the requester as an anchor does. From then on every receive ends in time for the provider
to anchor before the task's deadline, whatever the requester withholds.

The exchange is not fair in the other direction, and cannot be: a provider that anchored and
then cannot deliver (its link cut) is paid for a result the requester did not get. A requester
that stops answering before the last burst gets nothing and the task fails or expires unpaid.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from privledger.protocols.channel import Channel, ChannelTimeout


class LastMessages:
    """A provider's channels (``channels``, by peer), seen by its protocol through
    :attr:`views` that hold back what it sends until it next receives -- on any of them: a
    message to one peer may be what another peer waits for -- or until :meth:`release`. A view's
    transcript and byte counts are those of every message the protocol sent or received over it,
    held ones included, in the order its peer will see them."""

    def __init__(
        self,
        channels: Mapping[int, Channel],
        record_delivery: Callable[[], float] | None = None,
        requester: int | None = None,
    ) -> None:
        """``record_delivery`` records a delivery the protocol announced on the ledger, before
        the messages that deliver leave while it goes on, and returns by when (a
        :func:`time.monotonic` time) the protocol's receives must end so that the provider can
        still anchor; it raises to keep the messages. Given the ``requester`` (a key of
        ``channels``), only a delivery announced on its channel counts: one provider's output
        for another binds no one."""
        self._lock = threading.Lock()  # the held messages, and their order against direct sends
        self._held: list[tuple[Channel, bytes]] = []
        self._receiving = 0
        self._record_delivery = record_delivery
        self._delivering = False  # the protocol said that what it sends gives the output
        self._until: float | None = None  # once the delivery is recorded: when receives end
        self._requester = requester
        self.views: dict[int, Channel] = {
            org: _Withheld(self, channel, org) for org, channel in channels.items()
        }

    @property
    def delivered(self) -> bool:
        """Whether the delivery was recorded on the ledger before messages giving the output
        left."""
        with self._lock:
            return self._until is not None

    @property
    def held(self) -> int:
        """How many messages wait for :meth:`release`."""
        with self._lock:
            return len(self._held)

    def release(self) -> None:
        """Send every held message, in the order the protocol sent them (after the anchor, which
        binds the requester: no delivery to record)."""
        with self._lock:
            self._delivering = False
            self._flush()

    def _delivers(self, peer: int) -> None:
        if self._requester is not None and peer != self._requester:
            return
        with self._lock:
            self._delivering = True

    def _send(self, inner: Channel, payload: bytes) -> None:
        with self._lock:
            if self._receiving == 0:
                self._held.append((inner, bytes(payload)))
                return
            self._leave()
            self._flush()
            inner.send(payload)

    def _recv(self, inner: Channel, timeout: float | None) -> bytes | bytearray:
        with self._lock:
            if self._held:
                self._leave()
                self._flush()
            if self._until is not None:
                left = self._until - time.monotonic()
                if left <= 0:
                    raise ChannelTimeout("no time left before the task's deadline to wait on")
                timeout = left if timeout is None else min(timeout, left)
            self._receiving += 1
        try:
            return inner.recv_buffer(timeout)
        finally:
            with self._lock:
                self._receiving -= 1

    def _leave(self) -> None:
        """Before messages leave while the protocol goes on: record the delivery it announced
        (once); the caller holds the lock."""
        if self._delivering and self._until is None and self._record_delivery is not None:
            self._until = self._record_delivery()

    def _flush(self) -> None:
        """Send what is held; the caller holds the lock."""
        held, self._held = self._held, []
        for inner, payload in held:
            inner.send(payload)


class _Withheld(Channel):
    """One channel of :class:`LastMessages`; it records the transcript, the inner channel
    carries the messages."""

    def __init__(self, owner: LastMessages, inner: Channel, peer: int) -> None:
        super().__init__(inner.side)
        self._owner = owner
        self._inner = inner
        self._peer = peer

    def close(self) -> None:
        self._inner.close()

    def delivering(self) -> None:
        self._owner._delivers(self._peer)

    def _send_raw(self, payload: bytes) -> None:
        self._owner._send(self._inner, payload)

    def _recv_raw(self, timeout: float | None) -> bytes | bytearray:
        return self._owner._recv(self._inner, timeout)
