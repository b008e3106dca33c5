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

The exchange is not fair in the other direction, and cannot be: a provider that anchored and
then cannot deliver (its link cut) is paid for a result the requester did not get. A requester
that stops answering before the last burst gets nothing and the task fails or expires unpaid.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from privledger.protocols.channel import Channel


class LastMessages:
    """A provider's channels (``channels``, by peer), seen by its protocol through
    :attr:`views` that hold back what it sends until it next receives -- on any of them: a
    message to one peer may be what another peer waits for -- or until :meth:`release`. A view's
    transcript and byte counts are those of every message the protocol sent or received over it,
    held ones included, in the order its peer will see them."""

    def __init__(self, channels: Mapping[int, Channel]) -> None:
        self._lock = threading.Lock()  # the held messages, and their order against direct sends
        self._held: list[tuple[Channel, bytes]] = []
        self._receiving = 0
        self.views: dict[int, Channel] = {
            org: _Withheld(self, channel) for org, channel in channels.items()
        }

    @property
    def held(self) -> int:
        """How many messages wait for :meth:`release`."""
        with self._lock:
            return len(self._held)

    def release(self) -> None:
        """Send every held message, in the order the protocol sent them."""
        with self._lock:
            self._flush()

    def _send(self, inner: Channel, payload: bytes) -> None:
        with self._lock:
            if self._receiving == 0:
                self._held.append((inner, bytes(payload)))
                return
            self._flush()
            inner.send(payload)

    def _recv(self, inner: Channel, timeout: float | None) -> bytes | bytearray:
        with self._lock:
            self._flush()
            self._receiving += 1
        try:
            return inner.recv_buffer(timeout)
        finally:
            with self._lock:
                self._receiving -= 1

    def _flush(self) -> None:
        """Send what is held; the caller holds the lock."""
        held, self._held = self._held, []
        for inner, payload in held:
            inner.send(payload)


class _Withheld(Channel):
    """One channel of :class:`LastMessages`; it records the transcript, the inner channel
    carries the messages."""

    def __init__(self, owner: LastMessages, inner: Channel) -> None:
        super().__init__(inner.side)
        self._owner = owner
        self._inner = inner

    def close(self) -> None:
        self._inner.close()

    def _send_raw(self, payload: bytes) -> None:
        self._owner._send(self._inner, payload)

    def _recv_raw(self, timeout: float | None) -> bytes | bytearray:
        return self._owner._recv(self._inner, timeout)
