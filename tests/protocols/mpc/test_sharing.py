from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from privledger.protocols.channel import Channel, channel_pair
from privledger.protocols.mpc import correlations, ring
from privledger.protocols.mpc import sharing as sh
from privledger.protocols.mpc.dealer import Dealer, local_mesh
from privledger.protocols.mpc.sharing import MpcError, Party, PartyDropout, PeerSilent

F = ring.DEFAULT_FRAC_BITS


def _shared_run(size: int, inputs: list[np.ndarray], work):  # type: ignore[no-untyped-def]
    """Every party inputs a vector; ``work(party, group, shares_of_sum)`` runs everywhere."""
    with local_mesh(size, timeout=10) as mesh:

        def run(party: Party):  # type: ignore[no-untyped-def]
            group = party.parties
            shares = sh.share_sum(party, group, ring.words(inputs[party.index]))
            return work(party, group, shares)

        return mesh.run(run)


def test_fixed_point_round_trip_precision() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 1e6, 10_000), [0.0, -0.0, 1.5, -1.5, 2.0**-17]])
    decoded = ring.decode_fixed(ring.encode_fixed(values, F), F)
    assert np.max(np.abs(decoded - values)) <= 2.0 ** -(F + 1)
    assert ring.decode_fixed(ring.encode_fixed([-3.25], 2), 2)[0] == -3.25


def test_fixed_point_rejects_out_of_range_and_nan() -> None:
    with pytest.raises(ValueError, match="range"):
        ring.encode_fixed([2.0 ** (63 - F)], F)
    with pytest.raises(ValueError, match="finite"):
        ring.encode_fixed([float("nan")], F)
    with pytest.raises(ValueError, match="frac_bits"):
        ring.encode_fixed([1.0], 41)


@pytest.mark.parametrize("parties", [1, 2, 5])
def test_split_reconstruct_round_trip(parties: int) -> None:
    secret = ring.words([0, 1, -1, 2**63 - 1, -(2**63), 12345])
    shares = ring.split(secret, parties)
    assert len(shares) == parties
    assert np.array_equal(ring.reconstruct(shares), secret)
    if parties > 1:
        assert not np.array_equal(shares[0], secret)


def test_random_words_lengths_and_spread() -> None:
    for count in (0, 1, 64, 65, 10_000):
        assert ring.random_words(count).shape == (count,)
    big = ring.random_words(10_000)
    assert len(np.unique(big)) == 10_000  # collisions have probability ~2^-38


def test_share_sum_and_open() -> None:
    inputs = [np.array([i, -i, 10 * i]) for i in range(4)]
    results = _shared_run(4, inputs, lambda p, g, s: sh.open_all(p, g, s))
    for opened in results:
        assert list(ring.to_signed(opened)) == [6, -6, 60]


def test_beaver_multiplication_matches_plaintext() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(-(2**40), 2**40, 200)
    y = rng.integers(-(2**20), 2**20, 200)
    inputs = [np.concatenate([x, y]) if i == 0 else np.zeros(400, dtype=np.int64) for i in range(3)]

    def work(party: Party, group: correlations.Group, shares: np.ndarray) -> np.ndarray:
        product = sh.mul(party, group, shares[:200], shares[200:])
        return sh.open_all(party, group, product)

    for opened in _shared_run(3, inputs, work):
        assert list(ring.to_signed(opened)) == [int(a) * int(b) for a, b in zip(x, y, strict=True)]


def test_fixed_point_product_and_truncation_error_bound() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1000, 1000, 500)
    y = rng.uniform(-1000, 1000, 500)
    ex, ey = ring.encode_fixed(x, F), ring.encode_fixed(y, F)
    inputs = [np.concatenate([ex, ey]).view(np.int64), np.zeros(1000, dtype=np.int64)]

    def work(party: Party, group: correlations.Group, shares: np.ndarray) -> np.ndarray:
        product = sh.mul_fixed(party, group, shares[:500], shares[500:], F, bound_bits=52)
        return sh.open_all(party, group, product)

    exact = ring.to_signed(ex).astype(object) * ring.to_signed(ey).astype(object)
    for opened in _shared_run(2, inputs, work):
        raw = ring.to_signed(opened)
        floor = np.asarray([int(v) >> F for v in exact], dtype=np.int64)
        assert np.all((raw == floor) | (raw == floor + 1))  # error below one unit (2^-16)
        # encoding rounds x and y by 2^-(F+1) each; truncation adds less than 2^-F
        bound = (np.abs(x) + np.abs(y) + 1) * 2.0 ** -(F + 1) + 2.0**-F
        assert np.all(np.abs(ring.decode_fixed(opened, F) - x * y) <= bound)


def test_truncation_on_small_and_negative_values_is_within_one_ulp() -> None:
    values = np.array([0, 1, -1, 2**16, -(2**16), 3 * 2**16 + 5, -(2**30) - 7], dtype=np.int64)

    def work(party: Party, group: correlations.Group, shares: np.ndarray) -> np.ndarray:
        return sh.open_all(party, group, sh.truncate(party, group, shares, F, bound_bits=40))

    for opened in _shared_run(3, [values, np.zeros(7, np.int64), np.zeros(7, np.int64)], work):
        raw = ring.to_signed(opened)
        floor = values >> F
        assert np.all((raw == floor) | (raw == floor + 1))
    with pytest.raises(ValueError):
        sh.truncate(None, (0,), ring.words([1]), 20, bound_bits=10)  # type: ignore[arg-type]


def test_and_triples_and_bit_conversion_and_inner_product() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2**63, 50, dtype=np.uint64)
    y = rng.integers(0, 2**63, 50, dtype=np.uint64)
    u = rng.integers(0, 2, 50, dtype=np.uint64)
    w = rng.integers(0, 2**40, 50, dtype=np.uint64)

    def work(party: Party) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        group = party.parties
        xs, ys = (x, y) if party.index == 0 else (np.zeros(50, np.uint64),) * 2
        anded = sh.open_all(party, group, sh.and_words(party, group, xs, ys), xor=True)
        bits = u if party.index == 1 else np.zeros(50, np.uint64)
        arith = sh.open_all(party, group, sh.bits_to_arith(party, group, bits))
        mine = u if party.index == 0 else w
        dot = sh.open_all(party, group, sh.inner_product(party, group, mine, left=0))
        return anded, arith, dot

    with local_mesh(2, timeout=10) as mesh:
        for anded, arith, dot in mesh.run(work):
            assert np.array_equal(anded, x & y)
            assert np.array_equal(arith, u)
            assert int(dot[0]) == int(np.sum(u * w))


def test_channels_have_equal_transcripts_after_a_protocol() -> None:
    a01, b01 = channel_pair()
    a02, b02 = channel_pair()
    a12, b12 = channel_pair()
    peers: list[dict[int, Channel]] = [{1: a01, 2: a02}, {0: b01, 2: a12}, {0: b02, 1: b12}]
    dealer_ends = [channel_pair() for _ in range(3)]
    dealer = Dealer({i: end for i, (_, end) in enumerate(dealer_ends)})
    dealer.serve()
    parties = [Party(i, peers[i], dealer=dealer_ends[i][0], timeout=10) for i in range(3)]

    def work(party: Party) -> None:
        group = party.parties
        s = sh.share_sum(party, group, ring.words([party.index + 1]))
        sh.open_to(party, group, sh.mul(party, group, s, s), 0)

    threads = [threading.Thread(target=work, args=(p,)) for p in parties]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for left, right in ((a01, b01), (a02, b02), (a12, b12)):
        assert left.transcript_hash == right.transcript_hash
    for end, _ in dealer_ends:
        end.close()
    dealer.join(5)


def test_dealer_refuses_requests_from_non_leads_and_bad_sizes() -> None:
    dealer = Dealer({0: channel_pair()[0], 1: channel_pair()[0]})
    with pytest.raises(MpcError):
        dealer.answer(1, b'{"op": "beaver", "group": [0, 1], "label": 0, "n": 1, "f": 0}')
    with pytest.raises(MpcError):
        dealer.answer(0, b'{"op": "beaver", "group": [0, 1], "label": 0, "n": -1, "f": 0}')
    with pytest.raises(MpcError):
        dealer.answer(0, b'{"op": "steal", "group": [0, 1], "label": 0, "n": 1, "f": 0}')
    with pytest.raises(MpcError):
        dealer.answer(0, b"not json")


def test_missing_party_raises_dropout_everywhere() -> None:
    with local_mesh(3, timeout=0.5) as mesh:
        outcomes: dict[int, BaseException | None] = {}

        def run(party: Party) -> None:
            try:
                group = party.parties
                with sh.session(party, "test"):
                    s = sh.share_sum(party, group, ring.words([7]))
                    outcomes[party.index] = None
                    sh.open_to(party, group, s, 0)
            except BaseException as exc:
                outcomes[party.index] = exc

        threads = [threading.Thread(target=run, args=(p,)) for p in mesh.parties[:2]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert isinstance(outcomes[0], PartyDropout)
    assert isinstance(outcomes[1], PartyDropout)
    assert "party 2" in str(outcomes[0]) or "party 1" in str(outcomes[0])


def test_party_validation() -> None:
    with pytest.raises(ValueError):
        Party(0, {0: channel_pair()[0]})
    with pytest.raises(ValueError):
        local_mesh(1)
    party = Party(0, {1: channel_pair()[0]}, dealer=None)
    with pytest.raises(MpcError, match="dealer"):
        party.correlation("beaver", (0, 1), 1)


def test_words_accepts_integers_only() -> None:
    assert list(ring.words([2**64 - 1, -1, 5])) == [2**64 - 1, 2**64 - 1, 5]
    with pytest.raises(ValueError):
        ring.words([1.5])
    with pytest.raises(ValueError):
        ring.words([2**64])


def _abort_scene(failure: str) -> tuple[BaseException | None, BaseException | None, float]:
    """Party 0 fails inside a session (``failure``: "silent" -- it waits for party 2, which
    never runs, with a 0.5 s timeout; or "refusal"); party 1 waits for party 0 with 30 s.
    Returns what party 1 raised, what the dealer's join raised, and party 1's waiting time."""
    with local_mesh(3, timeout=30) as mesh:
        first, second = mesh.parties[0], mesh.parties[1]
        first.timeout = 0.5
        outcome: dict[str, BaseException | float | None] = {}

        def zero() -> None:
            with pytest.raises((PeerSilent, ValueError)), sh.session(first, "test"):
                if failure == "silent":
                    first.recv(2)
                raise ValueError("this party refuses")

        def one() -> None:
            started = time.monotonic()
            try:
                with sh.session(second, "test"):
                    second.recv(0)
            except PartyDropout as exc:
                outcome["party"] = exc
            outcome["waited"] = time.monotonic() - started

        threads = [threading.Thread(target=zero), threading.Thread(target=one)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert mesh.dealer is not None
        try:
            mesh.dealer.join(5)  # party 2's dealer channel is still open: the dealer must stop
        except PartyDropout as exc:
            outcome["dealer"] = exc
    party, dealer, waited = outcome.get("party"), outcome.get("dealer"), outcome["waited"]
    assert isinstance(waited, float)
    assert not isinstance(party, float) and not isinstance(dealer, float)
    return party, dealer, waited


def test_a_silent_peer_is_reported_to_everyone_as_silence_and_stops_the_dealer() -> None:
    party, dealer, waited = _abort_scene("silent")
    assert isinstance(party, PeerSilent) and "party 0" in str(party)
    assert waited < 10  # told by party 0's notice, not by its own 30 s timeout
    assert isinstance(dealer, PeerSilent)  # a node records both as PEER_UNREACHABLE


def test_a_refusing_party_is_reported_as_a_dropout_not_as_silence() -> None:
    party, dealer, waited = _abort_scene("refusal")
    assert isinstance(party, PartyDropout) and not isinstance(party, PeerSilent)
    assert "ValueError: this party refuses" in str(party) and waited < 10
    assert isinstance(dealer, PartyDropout) and not isinstance(dealer, PeerSilent)


def test_dealer_join_returns_after_a_clean_session_and_raises_when_parties_hang() -> None:
    mesh = local_mesh(2, timeout=5)
    results = mesh.run(
        lambda party: sh.open_all(
            party, party.parties, sh.mul(party, party.parties, ring.words([3]), ring.words([5]))
        )
    )
    assert [int(r[0]) for r in results] == [(3 + 3) * (5 + 5)] * 2  # both parties input 3, 5
    for channel in mesh.channels:  # every party closes its channels, as a node does when done
        channel.close()
    assert mesh.dealer is not None
    mesh.dealer.join(5)  # a clean session: no exception
    hanging = Dealer({0: channel_pair()[0], 1: channel_pair()[0]})
    hanging.serve()
    started = time.monotonic()
    with pytest.raises(PeerSilent, match="still running"):
        hanging.join(0.3)
    assert time.monotonic() - started < 3


def test_a_peer_leaving_without_a_word_is_silent_and_the_dealer_passes_an_abort_on() -> None:
    with local_mesh(3, timeout=30) as mesh:
        zero, one, two = mesh.parties
        for peer in (0, 1):  # party 2's node gives up on the task: it just closes its channels
            two._peers[peer].close()
        started = time.monotonic()
        with pytest.raises(PeerSilent, match="left without a word"):
            one.recv(2)
        assert time.monotonic() - started < 5  # not its 30 s timeout
        zero.abort(PeerSilent("party 0: party 2 did not answer"))
        assert mesh.dealer is not None
        with pytest.raises(PeerSilent):
            mesh.dealer.join(5)
        # party 1 asks the dealer for a correlation: it hears the abort from the dealer
        with pytest.raises(PeerSilent, match="the dealer aborted because a peer is unreachable"):
            one.correlation("beaver", (1, 2), 4)
