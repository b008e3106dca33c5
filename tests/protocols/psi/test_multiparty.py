from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from privledger.protocols.channel import Channel
from privledger.protocols.psi import multiparty as mp
from privledger.protocols.psi import okvs
from privledger.protocols.psi.multiparty import PsiHandshakeError

TIMEOUT = 30.0


def _items(count: int, rng: random.Random, size: int = 12) -> list[bytes]:
    return [rng.randbytes(size) for _ in range(count)]


def _check(sets: Sequence[Sequence[bytes]], leader: int = 0) -> None:
    plain = [set(s) for s in sets]
    inter = mp.run_local("intersection", sets, leader=leader, timeout=TIMEOUT)
    union = mp.run_local("union", sets, leader=leader, timeout=TIMEOUT)
    assert inter[leader].items == sorted(plain[0] & plain[1] & plain[2])
    assert union[leader].items == sorted(plain[0] | plain[1] | plain[2])
    for results in (inter, union):
        for i, result in enumerate(results):
            assert result.learned_output is (i == leader)
            if i != leader:
                assert result.items == []
        assert results[leader].sizes == {i: len(plain[i]) for i in range(3)}


# --- OKVS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 5, 127, 3000])
def test_okvs_decodes_encoded_keys(count: int) -> None:
    keys = np.frombuffer(os.urandom(16 * count), dtype=np.uint8).reshape(count, 16)
    values = np.frombuffer(os.urandom(7 * count), dtype=np.uint8).reshape(count, 7)
    store = okvs.encode(keys, values)
    assert store.table.shape == (okvs.table_cells(count), 7)
    assert np.array_equal(okvs.decode(store, keys), values)


def test_okvs_refuses_duplicate_keys() -> None:
    keys = np.zeros((2, 16), dtype=np.uint8)
    with pytest.raises(okvs.OkvsError):
        okvs.encode(keys, np.zeros((2, 4), dtype=np.uint8))


def test_okvs_unknown_keys_decode_to_unrelated_values() -> None:
    keys = np.frombuffer(os.urandom(16 * 500), dtype=np.uint8).reshape(500, 16)
    store = okvs.encode(keys, np.zeros((500, 8), dtype=np.uint8))
    other = np.frombuffer(os.urandom(16 * 500), dtype=np.uint8).reshape(500, 16)
    hits_encoded_value = ~okvs.decode(store, other).any(axis=1)
    # With all-zero values an unknown key decodes to zero only when its cell vector lies in the
    # span of the encoded keys' vectors (measured: ~2e-5 per key at this load); never in bulk.
    assert np.count_nonzero(hits_encoded_value) <= 2


# --- three-party intersection and union ----------------------------------------------------


def test_random_overlapping_sets() -> None:
    rng = random.Random(1)
    pool = _items(400, rng)
    _check([rng.sample(pool, 200), rng.sample(pool, 150), rng.sample(pool, 250)])


@pytest.mark.parametrize("leader", [0, 1, 2])
def test_any_party_can_lead(leader: int) -> None:
    rng = random.Random(leader)
    pool = _items(100, rng)
    _check([rng.sample(pool, 60), rng.sample(pool, 70), rng.sample(pool, 50)], leader=leader)


def test_duplicates_are_ignored() -> None:
    rng = random.Random(2)
    pool = _items(50, rng)
    _check([pool[:30] * 3, pool[10:40] + pool[10:20], pool[5:50] * 2])


@pytest.mark.parametrize("empty", [0, 1, 2])
def test_an_empty_set(empty: int) -> None:
    rng = random.Random(3)
    pool = _items(40, rng)
    sets: list[list[bytes]] = [pool[:30], pool[10:], pool[5:35]]
    sets[empty] = []
    _check(sets)


def test_all_empty() -> None:
    _check([[], [], []])


def test_disjoint_sets() -> None:
    rng = random.Random(4)
    pool = _items(90, rng)
    _check([pool[:30], pool[30:60], pool[60:]])


def test_pairwise_overlap_but_empty_triple() -> None:
    a, b, c, d = (bytes([k]) * 5 for k in range(4))
    _check([[a, b], [b, c], [c, a, d]])


def test_identical_sets() -> None:
    rng = random.Random(5)
    pool = _items(77, rng)
    _check([pool, list(reversed(pool)), pool[::2] + pool[1::2]])


def test_unicode_empty_and_very_long_items() -> None:
    long_a = b"x" * 200_000
    long_b = b"x" * 199_999 + b"y"
    text = ["客户-001", "Ünïcödé", "😀 emoji", "نص عربي", ""]
    items = [t.encode() for t in text] + [long_a, long_b, b"\x00", b"\x00\x00"]
    _check([items, [*items[1:], b"only-1"], [*items[:-2], b"\x00\x00", b"only-2"]])


@pytest.mark.parametrize("sizes", [(1, 1, 1), (1, 257, 3), (1000, 33, 129), (5, 1, 999)])
def test_sizes_that_are_not_powers_of_two(sizes: tuple[int, int, int]) -> None:
    rng = random.Random(sum(sizes))
    pool = _items(max(sizes) + 20, rng, size=6)
    sets = [rng.sample(pool, k) for k in sizes]
    sets[0][0:1] = [pool[0]]
    for s in sets[1:]:
        if pool[0] not in s:
            s[0] = pool[0]  # at least one common item
    _check(sets)


def test_medium_random_sets() -> None:
    rng = random.Random(6)
    pool = _items(30_000, rng, size=9)
    _check([rng.sample(pool, 20_000), rng.sample(pool, 15_000), rng.sample(pool, 12_345)])


def test_channels_stay_turn_based() -> None:
    rng = random.Random(7)
    pool = _items(60, rng)
    sets = [pool[:40], pool[20:], pool[10:50]]
    for op in ("intersection", "union"):
        mesh = mp.local_channels(range(3))
        with ThreadPoolExecutor(3) as pool_:
            run = mp.run_intersection if op == "intersection" else mp.run_union
            futures = [pool_.submit(run, i, mesh[i], sets[i], timeout=TIMEOUT) for i in range(3)]
            for future in futures:
                future.result()
        for i in range(3):
            for j in range(i + 1, 3):
                assert mesh[i][j].transcript_hash == mesh[j][i].transcript_hash


def test_leader_mismatch_is_refused() -> None:
    mesh = mp.local_channels(range(3))

    def run(index: int) -> mp.MultiPartyResult:
        leader = 1 if index == 2 else 0
        return mp.run_intersection(index, mesh[index], [b"x"], leader=leader, timeout=TIMEOUT)

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(run, i) for i in range(3)]
        errors = [f.exception() for f in futures]
    assert any(isinstance(e, PsiHandshakeError) for e in errors)
    assert all(e is not None for e in errors)  # the others fail fast (closed channels)


def test_bad_arguments() -> None:
    mesh = mp.local_channels(range(3))
    with pytest.raises(ValueError):
        mp.run_union(0, {1: mesh[0][1]}, [b"x"])
    with pytest.raises(ValueError):
        mp.run_union(0, mesh[0], [b"x"], receiver=7)
    with pytest.raises(TypeError):
        mp.run_intersection(0, mesh[0], ["text"])  # type: ignore[list-item]


def test_member_header_mismatch_refused_on_the_wire() -> None:
    mesh = mp.local_channels(range(2))
    channel: Channel = mesh[0][1]
    mesh[1][0].send(json.dumps({"protocol": "other"}).encode())
    with pytest.raises(PsiHandshakeError):
        mp.run_union(0, {1: channel, 2: mp.local_channels(range(2))[0][1]}, [b"x"], timeout=5)


# --- two-party difference and membership ---------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([b"1", b"2", b"3", b"3"], [b"2", b"4"]),
        ([], [b"1"]),
        ([b"1", b"2"], []),
        ([b"1", b"2"], [b"1", b"2"]),
        ([b"x" * 100_000, "é".encode(), b""], [b"", b"y"]),
    ],
)
def test_difference(a: list[bytes], b: list[bytes]) -> None:
    assert mp.local_difference(a, b, timeout=TIMEOUT) == sorted(set(a) - set(b))


def test_difference_random() -> None:
    rng = random.Random(8)
    pool = _items(3000, rng)
    a, b = rng.sample(pool, 2000), rng.sample(pool, 1777)
    assert mp.local_difference(a, b, timeout=TIMEOUT) == sorted(set(a) - set(b))


def test_membership() -> None:
    rng = random.Random(9)
    items = _items(1000, rng)
    hit = mp.local_membership(items[17], items, timeout=TIMEOUT)
    assert hit == mp.MembershipResult(True, 1000)
    assert not mp.local_membership(b"absent", items, timeout=TIMEOUT).member
    assert not mp.local_membership(b"", [], timeout=TIMEOUT).member
    assert mp.local_membership("ключ".encode(), ["ключ".encode()], timeout=TIMEOUT).member


def test_union_members_chunks_are_not_held_until_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider's node holds what it sends until it next receives (:mod:`privledger.node
    .release`): the receiver's acknowledgements must let a member's first chunk of OPRF
    messages out while the member still encodes the next one (version 3 held every chunk until
    the member's next receive, after the last); the transcripts stay equal."""
    import threading

    from privledger.node.release import LastMessages
    from privledger.protocols.psi import ot

    monkeypatch.setattr(mp, "CHUNK_BINS", 128)
    first_chunks = threading.Semaphore(0)  # released once per first chunk the receiver took
    saw_first: list[bool] = []
    receive, encode = ot.KkrtSender.receive, ot.KkrtReceiver.encode

    def receiving(self: ot.KkrtSender, u: np.ndarray, offset: int = 0) -> None:
        if offset == 0:
            first_chunks.release()
        receive(self, u, offset)

    def encoding(self: ot.KkrtReceiver, inputs: np.ndarray, offset: int = 0) -> object:
        if offset == 128:  # a member's second chunk: the receiver has its first one
            saw_first.append(first_chunks.acquire(timeout=5.0))
        return encode(self, inputs, offset)

    monkeypatch.setattr(ot.KkrtSender, "receive", receiving)
    monkeypatch.setattr(ot.KkrtReceiver, "encode", encoding)
    rng = random.Random(7)
    sets = [_items(300, rng) for _ in range(3)]
    mesh = mp.local_channels(range(3))
    holders = {i: LastMessages(mesh[i]) for i in (1, 2)}  # the members are providers

    def party(i: int) -> mp.MultiPartyResult:
        peers = holders[i].views if i in holders else mesh[i]
        result = mp.run_union(i, peers, sets[i], receiver=0, timeout=TIMEOUT)
        if i in holders:
            holders[i].release()  # the released pad keys: a member's last burst
        return result

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(party, i) for i in range(3)]
        results = [future.result(timeout=TIMEOUT) for future in futures]
    assert saw_first == [True, True]
    assert set(results[0].items) == set().union(*map(set, sets))
    for i, j in ((0, 1), (0, 2), (1, 2)):
        mine = holders[i].views[j] if i in holders else mesh[i][j]
        assert mine.transcript_hash == holders[j].views[i].transcript_hash
