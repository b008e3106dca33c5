"""ECDH-PSI's cardinality phase: the provider counts the intersection before it releases it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from privledger.protocols.channel import ChannelError, channel_pair
from privledger.protocols.psi import ecdh
from privledger.protocols.psi.common import PsiHandshakeError, PsiResult
from privledger.protocols.psi.ecdh import PsiResultTooSmall, run_psi, run_psi_size

TIMEOUT = 10.0


def _run(
    mine: list[bytes],
    theirs: list[bytes],
    *,
    least: int | None,
    requester_least: int | None = 0,
    reveal: bool = False,
) -> tuple[PsiResult, PsiResult]:
    requester_channel, provider_channel = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        requester = pool.submit(
            run_psi,
            requester_channel,
            mine,
            role="requester",
            reveal_to_provider=reveal,
            workers=1,
            timeout=TIMEOUT,
            min_result=requester_least,
        )
        provider = pool.submit(
            run_psi,
            provider_channel,
            theirs,
            role="provider",
            reveal_to_provider=reveal,
            workers=1,
            timeout=TIMEOUT,
            min_result=least,
        )
        try:
            return requester.result(), provider.result()
        finally:
            requester_channel.close()
            provider_channel.close()


@pytest.mark.parametrize("reveal", [False, True])
def test_an_intersection_at_the_threshold_is_released(reveal: bool) -> None:
    mine = [f"k{i}".encode() for i in range(20)]
    theirs = [f"k{i}".encode() for i in range(15, 40)]
    requester, provider = _run(mine, theirs, least=5, reveal=reveal)
    assert requester.intersection == sorted(mine[15:])
    assert provider.learned_output is reveal
    assert provider.intersection == (sorted(mine[15:]) if reveal else [])


def test_a_smaller_intersection_is_refused_before_the_requester_can_find_it() -> None:
    mine = [f"k{i}".encode() for i in range(20)]
    theirs = [f"k{i}".encode() for i in range(17, 40)]  # 3 in common
    requester_channel, provider_channel = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        requester = pool.submit(
            run_psi, requester_channel, mine, role="requester", workers=1, timeout=2, min_result=0
        )
        provider = pool.submit(
            run_psi, provider_channel, theirs, role="provider", workers=1, timeout=2, min_result=5
        )
        with pytest.raises(PsiResultTooSmall) as refused:
            provider.result()
        provider_channel.close()
        with pytest.raises(ChannelError):  # the requester never gets AB
            requester.result()
    assert (refused.value.size, refused.value.least) == (3, 5)


def test_both_parties_run_the_cardinality_phase_or_neither() -> None:
    requester_channel, provider_channel = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        requester = pool.submit(
            run_psi, requester_channel, [b"a"], role="requester", workers=1, timeout=2
        )
        provider = pool.submit(
            run_psi, provider_channel, [b"a"], role="provider", workers=1, timeout=2, min_result=1
        )
        with pytest.raises(PsiHandshakeError):  # the requester's header names the plain protocol
            provider.result()
        provider_channel.close()
        with pytest.raises(ChannelError):
            requester.result()


def _sizes(mine: list[bytes], theirs: list[bytes], least: int) -> tuple[int, int]:
    requester_channel, provider_channel = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        requester = pool.submit(
            run_psi_size, requester_channel, mine, role="requester", min_result=0, workers=1,
            timeout=TIMEOUT,
        )  # fmt: skip
        provider = pool.submit(
            run_psi_size, provider_channel, theirs, role="provider", min_result=least, workers=1,
            timeout=TIMEOUT,
        )  # fmt: skip
        try:
            provided = provider.result()  # first: a refusal must not wait for the requester
            return requester.result(), provided
        finally:
            requester_channel.close()
            provider_channel.close()


def test_size_only_gives_both_the_count_and_the_requester_no_item() -> None:
    mine = [f"k{i}".encode() for i in range(20)] * 2  # duplicates count once
    theirs = [f"k{i}".encode() for i in range(12, 40)]
    assert _sizes(mine, theirs, least=8) == (8, 8)
    # what the requester received: the header, B and the count -- never AB (32 bytes an item)
    requester_channel, provider_channel = channel_pair()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(
            run_psi_size, provider_channel, theirs, role="provider", min_result=1, workers=1
        )
        assert run_psi_size(requester_channel, mine, role="requester", min_result=0, workers=1) == 8
    header = requester_channel.bytes_received - 32 * len(theirs) - 8
    assert 0 < header < 200 < 32 * 20


def test_size_only_refuses_below_the_threshold_and_pairs_only_with_itself() -> None:
    mine = [f"k{i}".encode() for i in range(20)]
    theirs = [f"k{i}".encode() for i in range(17, 40)]  # 3 in common
    with pytest.raises(PsiResultTooSmall):
        _sizes(mine, theirs, least=5)
    requester_channel, provider_channel = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        requester = pool.submit(
            run_psi, requester_channel, mine, role="requester", workers=1, timeout=2, min_result=0
        )
        provider = pool.submit(
            run_psi_size, provider_channel, theirs, role="provider", min_result=1, timeout=2
        )
        with pytest.raises(PsiHandshakeError):  # a full intersection is not a size-only run
            provider.result()
        provider_channel.close()
        with pytest.raises(ChannelError):
            requester.result()


def test_b_is_not_held_while_the_provider_computes_ab(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider's node holds what it sends until it next receives (:mod:`privledger.node
    .release`): B must reach the requester while the provider still computes AB, so that the
    requester's BA and the provider's AB overlap; the transcripts stay equal."""
    import threading

    from privledger.node.release import LastMessages
    from privledger.protocols.psi import ecdh

    b_arrived = threading.Event()
    ab_saw_b: list[bool] = []
    original = ecdh._Blinder.reblind

    def reblind(self: ecdh._Blinder, points: bytes) -> bytes:
        if threading.current_thread().name.startswith("requester"):
            b_arrived.set()  # the requester reblinds B: it has it
        else:
            ab_saw_b.append(b_arrived.wait(5.0))
        return original(self, points)

    monkeypatch.setattr(ecdh._Blinder, "reblind", reblind)
    mine = [f"x{i}".encode() for i in range(30)]
    theirs = [f"x{i}".encode() for i in range(10, 50)]
    requester_channel, provider_channel = channel_pair()
    holder = LastMessages({1: provider_channel})
    with (
        ThreadPoolExecutor(1, thread_name_prefix="requester") as requester_pool,
        ThreadPoolExecutor(1, thread_name_prefix="provider") as provider_pool,
    ):
        requester = requester_pool.submit(
            run_psi, requester_channel, mine, role="requester", timeout=TIMEOUT, min_result=1
        )
        provider = provider_pool.submit(
            run_psi, holder.views[1], theirs, role="provider", timeout=TIMEOUT, min_result=1
        )
        provider.result(timeout=TIMEOUT)
        holder.release()  # AB: the provider's last burst
        result = requester.result(timeout=TIMEOUT)
    assert ab_saw_b == [True]
    assert result.intersection == sorted(set(mine) & set(theirs))
    assert holder.views[1].transcript_hash == requester_channel.transcript_hash


def test_position_keys_blind_as_the_blinders_key_at_their_position_only() -> None:
    point = ecdh.hash_items([b"item"])[0]
    with ecdh._Blinder(1) as blinder:
        blinding, unblinding = blinder.position_keys(64)
        whole = blinder.reblind(point)
        twice = [
            ecdh._reblind([w], ecdh._reblind([k], point))
            for k, w in zip(blinding, unblinding, strict=True)
        ]
        moved = ecdh._reblind([unblinding[1]], ecdh._reblind([blinding[0]], point))
    assert twice == [whole] * 64
    assert len(set(blinding)) == len(set(unblinding)) == 64 and moved != whole


@pytest.mark.parametrize(
    ("bitmap", "match"),
    [(b"\xff", "bitmap of 10 matches is 2 bytes"), (b"\x00\x01", "does not cover")],
)
def test_a_bitmap_that_does_not_fit_the_requesters_set_is_refused(
    monkeypatch: pytest.MonkeyPatch, bitmap: bytes, match: str
) -> None:
    def send_bad_bitmap(session: ecdh._Session, min_result: int) -> PsiResult:
        ecdh._provider_counts(session, min_result)
        session.channel.send(bitmap)
        return PsiResult([], False, session.peer_size)

    monkeypatch.setattr(ecdh, "_provider_counting", send_bad_bitmap)
    mine = [f"k{i}".encode() for i in range(10)]
    with pytest.raises(ChannelError, match=match):
        _run(mine, mine, least=1)
