"""The PSI header exchange: both headers travel before either party checks the other's, so a
mismatch (another protocol or version) is a prompt refusal on both sides, never a timeout."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from privledger.protocols.channel import channel_pair
from privledger.protocols.psi.common import Header, PsiHandshakeError, handshake

TIMEOUT = 5.0


@pytest.mark.parametrize(
    ("a_speaks", "b_speaks"),
    [(("x-psi", 1), ("y-psi", 1)), (("x-psi", 1), ("x-psi", 2))],
)
def test_a_mismatch_is_refused_at_once_on_both_sides(
    a_speaks: tuple[str, int], b_speaks: tuple[str, int]
) -> None:
    a, b = channel_pair()
    headers = {
        a: Header(a_speaks[0], a_speaks[1], "requester", False, 10),
        b: Header(b_speaks[0], b_speaks[1], "provider", False, 20),
    }
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(handshake, end, headers[end], TIMEOUT) for end in (a, b)]
        for future in futures:
            with pytest.raises(PsiHandshakeError, match="peer speaks"):
                future.result(TIMEOUT * 2)
    assert time.monotonic() - started < TIMEOUT / 2  # nobody waited for a header


def test_matching_headers_give_the_peer_size() -> None:
    a, b = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        sizes = [
            pool.submit(handshake, a, Header("x-psi", 1, "requester", False, 10), TIMEOUT),
            pool.submit(handshake, b, Header("x-psi", 1, "provider", False, 20), TIMEOUT),
        ]
        assert [future.result(TIMEOUT) for future in sizes] == [20, 10]
