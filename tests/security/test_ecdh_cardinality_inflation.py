"""A deviating requester must not make ECDH-PSI's provider count more than |X ∩ Y|.

The provider releases the requester's output only when its count of the intersection reaches its
``min_result`` (the grant's terms, the level policy's minimum). Version 3 counted the distinct
values common to AB (the provider's layer on A) and a shuffled BA (the requester's layer on B): a
requester that put one target t into A under m extra exponents, ``A_k = H(t)^(a c_k)``, and
answered with ``B_g^(a c_k)`` for every k, on a guess of n / m indices g, made one common item
count m times whenever t sat at a guessed index -- about one run in m released, and a release
told it that t is held (seen to succeed on 37ff21f: 6 releases in 60 runs). Each of the
provider's items now counts at most once, so with one common item the count is at most 1.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable
from contextlib import suppress

import pytest
from nacl.bindings import crypto_scalarmult

from privledger.protocols.channel import Channel, ChannelError, channel_pair
from privledger.protocols.psi.common import Header, handshake
from privledger.protocols.psi.ecdh import (
    CARDINALITY_PROTOCOL,
    VERSION,
    PsiResultTooSmall,
    _Blinder,
    _Session,
    _split_points,
    hash_items,
    run_psi,
)

pytestmark = pytest.mark.security

MIN_RESULT = 10
PROVIDER_ROWS = 100
TRIALS = 60  # version 3 released at least once in 60 runs with probability 1 - 0.9^60 > 99.8%
TIMEOUT = 10.0

# what the requester answers: (its key, its extra exponents, B) -> BA
Answer = Callable[[bytes, list[bytes], list[bytes]], list[bytes]]


def _guessed_indices(a: bytes, extra: list[bytes], b_points: list[bytes]) -> list[bytes]:
    """All m exponents on each of n / m guessed indices of B, the rest answered honestly."""
    indices = list(range(len(b_points)))
    random.shuffle(indices)
    guessed, rest = indices[: len(b_points) // len(extra)], indices[len(b_points) // len(extra) :]
    answer = []
    for g in guessed:
        b_a = crypto_scalarmult(a, b_points[g])
        answer += [crypto_scalarmult(c, b_a) for c in extra]
    answer += [crypto_scalarmult(a, b_points[j]) for j in rest]
    return answer[: len(b_points)]


def _each_position_its_exponent(a: bytes, extra: list[bytes], b_points: list[bytes]) -> list[bytes]:
    """Every index answered from its own point of B, under one of the m exponents in turn."""
    return [
        crypto_scalarmult(extra[j % len(extra)], crypto_scalarmult(a, point))
        for j, point in enumerate(b_points)
    ]


def _deviating_requester(
    channel: Channel, target: bytes, answer: Answer, extra: list[bytes]
) -> None:
    """A = the target under each of the ``extra`` exponents; BA as ``answer`` makes it."""
    m = len(extra)
    peer_size = handshake(
        channel, Header(CARDINALITY_PROTOCOL, VERSION, "requester", False, m), TIMEOUT
    )
    a = secrets.token_bytes(32)
    h_a = crypto_scalarmult(a, hash_items([target])[0])
    with _Blinder(1) as blinder:
        session = _Session(channel, blinder, [b""] * m, peer_size, False, TIMEOUT)
        session.send_points(b"".join(crypto_scalarmult(c, h_a) for c in extra))
        b_points = list(_split_points(session.recv_points(peer_size)))
        session.send_points(b"".join(answer(a, extra, b_points)))
        channel.recv(TIMEOUT)  # the provider's answer, if it releases one


def _provider_outcome(
    provider_items: list[bytes], target: bytes, answer: Answer, extra: list[bytes]
) -> object:
    requester_channel, provider_channel = channel_pair()
    outcome: dict[str, object] = {}

    def provide() -> None:
        try:
            outcome["provider"] = run_psi(
                provider_channel,
                provider_items,
                role="provider",
                workers=1,
                timeout=TIMEOUT,
                min_result=MIN_RESULT,
            )
        except ChannelError as refused:
            outcome["provider"] = refused
        finally:
            provider_channel.close()
            requester_channel.close()

    thread = threading.Thread(target=provide)
    thread.start()
    with suppress(ChannelError):  # refused: the provider closed the channel
        _deviating_requester(requester_channel, target, answer, extra)
    thread.join()
    return outcome["provider"]


@pytest.mark.parametrize("answer", [_guessed_indices, _each_position_its_exponent])
def test_one_common_item_never_passes_a_min_result_of_ten(answer: Answer) -> None:
    provider_items = [f"+44{secrets.randbelow(10**9):09d}".encode() for _ in range(PROVIDER_ROWS)]
    held = provider_items[37]
    counts = []
    for _ in range(TRIALS):
        extra = [secrets.token_bytes(32) for _ in range(MIN_RESULT)]
        outcome = _provider_outcome(provider_items, held, answer, extra)
        assert isinstance(outcome, PsiResultTooSmall), outcome  # never released
        counts.append(outcome.size)
    assert max(counts) <= 1  # the one common item counts once, whatever the requester sent


def test_a_repeated_point_in_a_is_refused() -> None:
    """An honest A has distinct points: the target sent MIN_RESULT times under one exponent
    (each position of B answered under it) is refused before anything is counted."""
    provider_items = [f"+44{secrets.randbelow(10**9):09d}".encode() for _ in range(PROVIDER_ROWS)]
    one = secrets.token_bytes(32)
    outcome = _provider_outcome(
        provider_items, provider_items[37], _each_position_its_exponent, [one] * MIN_RESULT
    )
    assert isinstance(outcome, ChannelError) and "twice" in str(outcome), outcome
