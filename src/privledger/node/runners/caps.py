"""The requester's set-size cap, enforced by the provider (grant terms ``max_requester_set`` and
``max_requester_ratio``).

Every two-party PSI and keyword-PIR protocol here opens with a JSON header in which the requester
announces its set size (``size``) or query batch (``batch``), and then binds itself to it: the
provider reads exactly that many blinded items or queries. The provider therefore checks the
announced size against the terms when the header arrives -- before it sends anything derived from
its data -- and refuses the task with TERMS_VIOLATION when it is larger than allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from privledger.protocols.channel import Channel, ChannelError


class CappedChannel(Channel):
    """A provider's channel to the requester that hands the requester's first message (its
    protocol header) to ``check`` with the size it announces before passing it on. It records
    nothing itself: the wrapped channel keeps the transcript and the byte counts."""

    def __init__(self, inner: Channel, check: Callable[[int], None]) -> None:
        super().__init__(inner.side)
        self._inner = inner
        self._check: Callable[[int], None] | None = check

    def send(self, payload: bytes) -> None:
        self._inner.send(payload)

    def recv_buffer(self, timeout: float | None = None) -> bytes | bytearray:
        payload = self._inner.recv_buffer(timeout)
        if self._check is not None:
            check, self._check = self._check, None
            check(announced_size(payload))
        return payload

    @property
    def transcript_hash(self) -> bytes:
        return self._inner.transcript_hash

    def delivering(self) -> None:
        self._inner.delivering()

    def close(self) -> None:
        self._inner.close()

    def _send_raw(self, payload: bytes) -> None:
        raise AssertionError("CappedChannel sends through the wrapped channel")

    def _recv_raw(self, timeout: float | None) -> bytes:
        raise AssertionError("CappedChannel receives through the wrapped channel")


def announced_size(header: bytes | bytearray) -> int:
    """The set size or query batch a protocol header announces."""
    try:
        fields = json.loads(bytes(header))
    except ValueError:
        raise ChannelError("the requester's first message is not a protocol header") from None
    size = fields.get("size", fields.get("batch")) if isinstance(fields, dict) else None
    if type(size) is not int or size < 0:
        raise ChannelError("the requester's protocol header announces no set size")
    return size
