"""A two-party PSI run between two threads over an in-memory channel, checked against Python's
set intersection: shared by the tests of the protocols with the common runner interface
(``run_psi(channel, items, *, role, reveal_to_provider, timeout)``: KKRT, RR22)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from privledger.protocols.channel import Channel, channel_pair
from privledger.protocols.psi.common import PsiResult

TIMEOUT = 30.0
RunPsi = Callable[..., PsiResult]


def run_both(
    run_psi: RunPsi,
    requester_items: Sequence[bytes],
    provider_items: Sequence[bytes],
    *,
    reveal: bool = False,
    requester_is_side_a: bool = True,
) -> tuple[PsiResult, PsiResult, Channel, Channel]:
    """Both parties' results and channel ends (requester first)."""
    a, b = channel_pair()
    requester_channel, provider_channel = (a, b) if requester_is_side_a else (b, a)
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(
                run_psi,
                channel,
                items,
                role=role,
                reveal_to_provider=reveal,
                timeout=TIMEOUT,
            )
            for channel, items, role in (
                (requester_channel, requester_items, "requester"),
                (provider_channel, provider_items, "provider"),
            )
        ]
        requester, provider = (future.result() for future in futures)
        return requester, provider, requester_channel, provider_channel


def check_psi(
    run_psi: RunPsi,
    x: Sequence[bytes],
    y: Sequence[bytes],
    *,
    reveal: bool = True,
    side_a: bool = True,
) -> None:
    """The requester (and with ``reveal`` the provider) gets exactly ``set(x) & set(y)``."""
    requester, provider, rc, pc = run_both(run_psi, x, y, reveal=reveal, requester_is_side_a=side_a)
    expected = sorted(set(x) & set(y))
    assert requester.intersection == expected
    assert requester.learned_output and requester.peer_size == len(set(y))
    assert provider.peer_size == len(set(x))
    assert provider.learned_output is reveal
    assert provider.intersection == (expected if reveal else [])
    assert rc.transcript_hash == pc.transcript_hash


def random_items(rng: random.Random, count: int) -> list[bytes]:
    """``count`` random items of 0 to 40 bytes."""
    return [rng.randbytes(rng.randint(0, 40)) for _ in range(count)]
