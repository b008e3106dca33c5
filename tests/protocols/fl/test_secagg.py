from __future__ import annotations

import numpy as np
import pytest

from privledger.protocols.fl.secagg import (
    SecAggClient,
    SecAggError,
    SecAggServer,
    dequantise,
    quantise,
    secure_sum,
    shamir_combine,
    shamir_split,
)


def _vectors(clients: int, length: int, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.integers(0, 2**64, length, dtype=np.uint64) for c in range(clients)}


def _expected(vectors: dict[int, np.ndarray], keep: set[int]) -> np.ndarray:
    total = np.zeros(next(iter(vectors.values())).size, dtype=np.uint64)
    for client in keep:
        total += vectors[client]
    return total


def test_shamir_any_threshold_subset_rebuilds_the_secret() -> None:
    secret = bytes(range(32))
    shares = shamir_split(secret, [0, 1, 2, 3, 4], threshold=3)
    for subset in ([0, 1, 2], [4, 2, 0], [1, 3, 4], [0, 1, 2, 3, 4]):
        assert shamir_combine({h: shares[h] for h in subset}, 32) == secret
    with pytest.raises(SecAggError):  # two shares of a degree-2 polynomial: an unrelated value
        shamir_combine({0: shares[0], 1: shares[1]}, 32)


def test_shamir_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError):
        shamir_split(bytes(32), [0, 1], threshold=3)
    with pytest.raises(ValueError):
        shamir_split(bytes(32), [0, 0, 1], threshold=2)


def test_aggregate_is_exact_without_dropout() -> None:
    vectors = _vectors(4, 1000)
    total, view = secure_sum(vectors)
    np.testing.assert_array_equal(total, _expected(vectors, {0, 1, 2, 3}))
    assert sorted(view) == [0, 1, 2, 3]


@pytest.mark.parametrize(("clients", "dropped"), [(3, {1}), (5, {0, 4}), (5, {3})])
def test_aggregate_is_exact_after_a_minority_drops_out(clients: int, dropped: set[int]) -> None:
    vectors = _vectors(clients, 257, seed=clients)
    total, view = secure_sum(vectors, round_id=7, drop_before_input=frozenset(dropped))
    survivors = set(range(clients)) - dropped
    np.testing.assert_array_equal(total, _expected(vectors, survivors))
    assert set(view) == survivors


@pytest.mark.parametrize(
    ("before_sharing", "before_input"), [({3}, set()), ({0}, {4}), ({1, 4}, set())]
)
def test_aggregate_is_exact_when_clients_drop_before_sharing_their_keys(
    before_sharing: set[int], before_input: set[int]
) -> None:
    """A client that advertised its keys and vanished before sharing them is left out of the
    masks by everyone (Bonawitz's U2); the round still sums the survivors exactly."""
    vectors = _vectors(5, 129, seed=11)
    total, view = secure_sum(
        vectors,
        round_id=3,
        threshold=3,
        drop_before_sharing=frozenset(before_sharing),
        drop_before_input=frozenset(before_input),
    )
    survivors = set(range(5)) - before_sharing - before_input
    np.testing.assert_array_equal(total, _expected(vectors, survivors))
    assert set(view) == survivors


def test_a_majority_dropping_out_aborts_the_round() -> None:
    with pytest.raises(SecAggError):
        secure_sum(_vectors(5, 8), drop_before_input=frozenset({0, 1, 2}))
    with pytest.raises(SecAggError):  # too few shared their keys
        secure_sum(_vectors(5, 8), drop_before_sharing=frozenset({0, 1, 2}))


def test_server_view_of_one_client_is_uniform() -> None:
    """Chi-square on the bytes and a frequency test on every bit of one masked vector whose
    input is all zeros (the most structured input there is)."""
    length = 20_000
    vectors = {c: np.zeros(length, dtype=np.uint64) for c in range(3)}
    _, view = secure_sum(vectors, drop_before_input=frozenset({2}))
    for masked in view.values():
        counts = np.bincount(np.frombuffer(masked.tobytes(), dtype=np.uint8), minlength=256)
        expected = 8 * length / 256
        chi_square = float(np.sum((counts - expected) ** 2 / expected))
        assert chi_square < 330.5  # 255 degrees of freedom, p = 0.001
        bits = (masked[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
        frequencies = bits.mean(axis=0)
        assert np.all(np.abs(frequencies - 0.5) < 5 * np.sqrt(0.25 / length))
    assert not np.array_equal(view[0], view[1])


def test_clients_refuse_to_unmask_for_too_few_survivors() -> None:
    clients = {c: SecAggClient(c, round_id=0, vector_length=4, threshold=3) for c in range(4)}
    server = SecAggServer(round_id=0, vector_length=4, threshold=3)
    roster = server.collect_keys([client.advertise_keys() for client in clients.values()])
    inboxes = server.route_shares({c: client.share_keys(roster) for c, client in clients.items()})
    for c in (0, 1):
        clients[c].masked_input(np.zeros(4, dtype=np.uint64), inboxes[c])
    with pytest.raises(SecAggError):
        clients[0].unmask([0, 1])
    with pytest.raises(SecAggError):
        clients[2].unmask([0, 1, 2])  # client 2 sent no input


def test_a_tampered_share_is_refused() -> None:
    clients = {c: SecAggClient(c, round_id=0, vector_length=4, threshold=2) for c in range(3)}
    server = SecAggServer(round_id=0, vector_length=4, threshold=2)
    roster = server.collect_keys([client.advertise_keys() for client in clients.values()])
    inboxes = server.route_shares({c: client.share_keys(roster) for c, client in clients.items()})
    inboxes[0][1] = inboxes[0][1][:-1] + bytes([inboxes[0][1][-1] ^ 1])
    with pytest.raises(SecAggError):
        clients[0].masked_input(np.zeros(4, dtype=np.uint64), inboxes[0])


def test_quantisation_round_trip_and_range() -> None:
    values = np.array([-1.5, 0.0, 3.25e-7, 12345.678])
    np.testing.assert_allclose(dequantise(quantise(values)), values, atol=2.0**-25)
    with pytest.raises(ValueError):
        quantise([2.0**40])
