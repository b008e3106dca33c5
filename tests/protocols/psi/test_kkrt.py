from __future__ import annotations

import hashlib
import itertools
import json
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from privledger.protocols.channel import ChannelError, channel_pair
from privledger.protocols.psi import cuckoo, jit, keyed, kkrt
from privledger.protocols.psi.common import Header, PsiHandshakeError
from privledger.protocols.psi.kkrt import run_psi

from .pairs import TIMEOUT


def test_provider_sends_shuffled_tags_of_the_right_length() -> None:
    x = [i.to_bytes(4, "big") for i in range(200)]
    y = [i.to_bytes(4, "big") for i in range(100, 400)]
    a, b = channel_pair()
    sent: list[bytes] = []
    original = b.send

    def spy(payload: bytes) -> None:
        sent.append(payload)
        original(payload)

    b.send = spy  # type: ignore[method-assign]
    with ThreadPoolExecutor(2) as pool:
        pool.submit(run_psi, a, x, role="requester", timeout=TIMEOUT)
        pool.submit(run_psi, b, y, role="provider", timeout=TIMEOUT).result()
    width = kkrt.tag_bytes(200, 300)
    assert width == 7  # ceil((40 + log2 200 + log2 300) / 8)
    tags = np.frombuffer(sent[-1][12:], dtype=np.uint8).reshape(3, 300, width)
    assert len({row.tobytes() for row in tags.reshape(-1, width)}) == 900


def test_tag_length_bounds_false_positives() -> None:
    assert kkrt.tag_bytes(1, 1) == 5
    assert kkrt.tag_bytes(1 << 20, 1 << 20) == 10
    assert kkrt.tag_bytes(1 << 24, 1 << 24) == 11
    assert kkrt.tag_bytes(1 << 60, 1 << 60) == 16


def test_match_resolves_shared_prefixes() -> None:
    peer = np.zeros((3, 4, 12), dtype=np.uint8)
    peer[0, :, 11] = [1, 2, 3, 4]  # four tags with the same 64-bit prefix
    peer[1, 2, 0] = 9
    own = np.zeros((4, 12), dtype=np.uint8)
    own[0, 11] = 3
    own[1, 11] = 5
    own[2, 0] = 9
    own[3, 11] = 3
    found, position = kkrt.match_tags(kkrt.OwnTags(own, np.array([0, 0, 1, 1])), peer)
    assert found.tolist() == [True, False, True, False]
    assert position[0] == 2 and position[2] == 2


def test_cuckoo_failure_raises_instead_of_a_wrong_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuckoo, "insert", lambda loc, bins: None)
    monkeypatch.setattr(cuckoo, "MAX_ATTEMPTS", 2)
    a, b = channel_pair()
    with ThreadPoolExecutor(1) as pool:
        provider = pool.submit(run_psi, b, [b"a", b"c"], role="provider", timeout=TIMEOUT)
        with a, pytest.raises(cuckoo.CuckooError):
            run_psi(a, [b"a", b"b"], role="requester", timeout=TIMEOUT)
        with pytest.raises(ChannelError):  # the provider learns nothing, the run stops
            provider.result()


def test_handshake_refuses_ecdh_peer_same_role_and_mode_mismatch() -> None:
    a, b = channel_pair()
    b.send(json.dumps({"protocol": "privledger/ecdh-psi-x25519", "version": 1}).encode())
    with pytest.raises(PsiHandshakeError):
        run_psi(a, [b"x"], role="requester", timeout=TIMEOUT)
    for header in (
        Header(kkrt.PROTOCOL, kkrt.VERSION, "requester", False, 3),
        Header(kkrt.PROTOCOL, kkrt.VERSION, "provider", True, 3),
    ):
        a, b = channel_pair()
        b.send(header.encode())
        with pytest.raises(PsiHandshakeError):
            run_psi(a, [b"x"], role="requester", timeout=TIMEOUT)


def test_rejects_non_bytes_and_bad_role() -> None:
    a, _ = channel_pair()
    with pytest.raises(TypeError):
        run_psi(a, ["text"], role="requester")  # type: ignore[list-item]
    with pytest.raises(ValueError):
        run_psi(a, [b"x"], role="auditor")  # type: ignore[arg-type]


def _reference_keys(items: list[bytes]) -> list[bytes]:
    out = []
    for item in items:
        if len(item) <= 15:
            out.append(item.ljust(15, b"\0") + bytes([len(item)]))
        else:
            digest = bytearray(
                hashlib.blake2b(item, digest_size=16, person=keyed.ITEM_KEY_DOMAIN).digest()
            )
            digest[15] = 0x80 | (digest[15] & 0x0F)
            out.append(bytes(digest))
    return out


@pytest.mark.parametrize("lengths", [[13], [0, 1, 15], [16, 40], [0, 3, 15, 16, 17, 300]])
def test_vectorised_item_keys_match_the_simple_definition(lengths: list[int]) -> None:
    rng = random.Random(len(lengths))
    items = [rng.randbytes(rng.choice(lengths)) for _ in range(500)]
    items += [b"", b"\0", b"a", b"a\0", b"\xff" * 15] if 0 in lengths else []
    data, offsets = cuckoo.pack_items(items)
    keys = cuckoo.item_keys(data, offsets, keyed.ITEM_KEY_DOMAIN)
    assert [row.tobytes() for row in keys] == _reference_keys(items)
    # sliced arrow arrays (non-zero offset) give the same keys
    array = pa.array(items, type=pa.binary())[7:]
    data, offsets = cuckoo.arrow_buffers(array)
    assert np.array_equal(cuckoo.item_keys(data, offsets, keyed.ITEM_KEY_DOMAIN), keys[7:])


def test_item_keys_are_injective_with_hash_index_and_dummies() -> None:
    items = [b"", b"\0", b"\0\0", b"a", b"a\0", b"a" * 15, b"a" * 16, b"\x10", b"\x20", b"\x30"]
    keys = cuckoo.item_keys(*cuckoo.pack_items(items), keyed.ITEM_KEY_DOMAIN)
    indexed = {
        cuckoo.indexed_keys(keys, i)[k].tobytes() for i in range(3) for k in range(len(items))
    }
    indexed |= {row.tobytes() for row in cuckoo.dummy_keys(50)}
    indexed.add(kkrt.EMPTY_BIN_INPUT.tobytes())
    assert len(indexed) == 3 * len(items) + 51


def test_distinct_keys_equal_first_seen_dedup() -> None:
    rng = random.Random(3)
    for trial in range(50):
        pool = [rng.randbytes(rng.choice([0, 2, 15, 20])) for _ in range(rng.randint(1, 40))]
        items = [rng.choice(pool) for _ in range(rng.randint(0, 200))]
        keys, first = keyed.distinct_item_keys(*cuckoo.pack_items(items))
        assert [items[k] for k in first] == list(dict.fromkeys(items)), trial
        assert len({row.tobytes() for row in keys}) == len(keys)


def test_bytes_order_of_short_keys_is_the_bytes_order() -> None:
    rng = random.Random(5)
    items = list({rng.randbytes(rng.randint(0, 15)) for _ in range(2000)} | {b"", b"\0", b"a\0"})
    keys = cuckoo.item_keys(*cuckoo.pack_items(items), keyed.ITEM_KEY_DOMAIN)
    assert [items[k] for k in keyed.bytes_order(keys)] == sorted(items)


def test_match_walks_runs_of_equal_prefixes_in_random_sets() -> None:
    rng = np.random.default_rng(9)
    peer = rng.integers(0, 256, (3, 3000, 9), dtype=np.uint8)
    peer[:, :, :8] = rng.integers(0, 4, (3, 3000, 1), dtype=np.uint8)  # few distinct prefixes
    which = rng.integers(0, 3, 500)
    own = rng.integers(0, 256, (500, 9), dtype=np.uint8)
    own[:, :8] = rng.integers(0, 4, (500, 1), dtype=np.uint8)
    picks = rng.integers(0, 3000, 250)
    own[:250] = peer[which[:250], picks]
    found, position = kkrt.match_tags(kkrt.OwnTags(own, which), peer)
    for k in range(500):
        hits = np.flatnonzero(np.all(peer[which[k]] == own[k], axis=1))
        assert found[k] == (hits.size > 0)
        if hits.size:
            assert position[k] in hits


def test_chunk_sizes_pipeline_small_tables_and_cover_every_bin() -> None:
    for n in (1, 100, 1 << 12, 1 << 16, 1 << 20, 1 << 24):
        bins = cuckoo.table_size(n)
        size = kkrt.chunk_bins(bins)
        assert size % 128 == 0 and kkrt.MIN_CHUNK_BINS <= size <= kkrt.CHUNK_BINS
        ranges = kkrt.chunks(bins)
        assert ranges[0][0] == 0 and ranges[-1][1] == bins
        assert all(hi == lo for (_, hi), (lo, _) in itertools.pairwise(ranges))
    assert len(kkrt.chunks(cuckoo.table_size(1 << 16))) >= 5  # R and P overlap at 2^16


@pytest.mark.parametrize("alphabet", [b"0123456789", b"\x00\x01", bytes(range(256))])
def test_bytes_order_packed_and_lexsort_paths_agree(alphabet: bytes) -> None:
    rng = random.Random(len(alphabet))
    items = list({b"+86" + bytes(rng.choice(alphabet) for _ in range(10)) for _ in range(3000)})
    items += [b"+86"]  # a shorter item: the length byte varies too
    keys = cuckoo.item_keys(*cuckoo.pack_items(items), keyed.ITEM_KEY_DOMAIN)
    order = keyed.bytes_order(keys)
    assert [items[k] for k in order] == sorted(items)
    words = keys.view(">u8").reshape(len(keys), 2)
    assert np.array_equal(order, np.lexsort((words[:, 1], words[:, 0])))


@pytest.mark.parametrize("alphabet", [b"0123456789", b"\x00\x01", bytes(range(256))])
def test_bytes_order_compiled_and_numpy_paths_agree(
    monkeypatch: pytest.MonkeyPatch, alphabet: bytes
) -> None:
    """The column ranges and packing in compiled kernels (once numba is loaded) and in numpy."""
    import numba  # noqa: F401 - loaded, as after any RR22 kernel

    rng = random.Random(len(alphabet))
    items = list({b"+86" + bytes(rng.choice(alphabet) for _ in range(10)) for _ in range(3000)})
    items += [b"+86", b"+8612345"]
    keys = cuckoo.item_keys(*cuckoo.pack_items(items), keyed.ITEM_KEY_DOMAIN)
    orders = []
    for loaded in (True, False):
        monkeypatch.setattr(jit, "loaded", lambda loaded=loaded: loaded)
        orders.append(keyed.bytes_order(keys))
    assert np.array_equal(orders[0], orders[1])
    assert [items[k] for k in orders[0]] == sorted(items)


@pytest.mark.parametrize("kind", [pa.large_binary(), pa.binary(), pa.string()])
def test_column_entry_point_matches_the_list_one(kind: pa.DataType) -> None:
    """An Arrow column (as read from CSV) gives the same intersection, in bytes order, with
    duplicates, unicode, long (hashed) items and the empty item among the inputs."""
    rng = random.Random(11)
    text = pa.types.is_string(kind)
    pool = [
        "",
        "é",
        "+8613800000000",
        "x" * 40,
        "中文🙂" * 9,
        *(str(rng.random()) for _ in range(300)),
    ]
    mine = [rng.choice(pool) for _ in range(500)]
    theirs = [rng.choice(pool) for _ in range(400)] + ["only-theirs"]

    def column(values: list[str]) -> pa.Array:
        return pa.array(values if text else [v.encode() for v in values], type=kind)

    a, b = channel_pair()
    with ThreadPoolExecutor(1) as pool_:
        provider = pool_.submit(
            kkrt.run_psi_column,
            b,
            column(theirs),
            role="provider",
            reveal_to_provider=True,
            timeout=TIMEOUT,
        )
        got = kkrt.run_psi_column(
            a, column(mine), role="requester", reveal_to_provider=True, timeout=TIMEOUT
        )
        theirs_got = provider.result()
    expected = sorted({v.encode() for v in mine} & {v.encode() for v in theirs})
    assert got.intersection.type == pa.large_binary()
    assert got.intersection.to_pylist() == expected
    assert theirs_got.intersection.to_pylist() == expected
    assert (got.peer_size, theirs_got.peer_size) == (len(set(theirs)), len(set(mine)))
    assert a.transcript_hash == b.transcript_hash


def test_column_entry_point_without_output() -> None:
    a, b = channel_pair()
    with ThreadPoolExecutor(1) as pool:
        provider = pool.submit(
            kkrt.run_psi_column, b, pa.array([b"a", b"b"]), role="provider", timeout=TIMEOUT
        )
        got = kkrt.run_psi_column(a, pa.array([b"b", b"c"]), role="requester", timeout=TIMEOUT)
        nothing = provider.result()
    assert got.intersection.to_pylist() == [b"b"]
    assert not nothing.learned_output and len(nothing.intersection) == 0
    assert nothing.peer_size == 2


def test_oprf_setup_is_not_held_while_the_provider_plans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A provider's node holds what it sends until it next receives (:mod:`privledger.node
    .release`): the provider's OPRF setup messages (the base-OT point, ``u'``, the code key)
    must reach the requester while the provider still hashes its items into bins, not after
    (the requester's base OTs and its encoding of ``u`` wait for them); the transcripts stay
    equal."""
    import threading

    from privledger.node.release import LastMessages

    setup_arrived = threading.Event()
    plan_saw_setup: list[bool] = []
    original_plan, original_setup = kkrt.provider_plan, kkrt.setup_requester

    def slow_plan(keys: np.ndarray, seed: bytes, bins: int) -> kkrt.ProviderPlan:
        plan_saw_setup.append(setup_arrived.wait(5.0))  # the requester has the setup meanwhile
        return original_plan(keys, seed, bins)

    def spying_setup(*args: Any, **kwargs: Any) -> kkrt.ReceiverSetup:
        setup = original_setup(*args, **kwargs)
        setup_arrived.set()
        return setup

    monkeypatch.setattr(kkrt, "provider_plan", slow_plan)
    monkeypatch.setattr(kkrt, "setup_requester", spying_setup)
    x = [i.to_bytes(4, "big") for i in range(200)]
    y = [i.to_bytes(4, "big") for i in range(100, 400)]
    a, b = channel_pair()
    holder = LastMessages({1: b})
    with ThreadPoolExecutor(2) as pool:
        requester = pool.submit(run_psi, a, x, role="requester", timeout=TIMEOUT)
        provider = pool.submit(run_psi, holder.views[1], y, role="provider", timeout=TIMEOUT)
        provider.result(timeout=TIMEOUT)
        holder.release()  # the tags: the provider's last burst
        result = requester.result(timeout=TIMEOUT)
    assert plan_saw_setup == [True]
    assert result.intersection == sorted(set(x) & set(y))
    assert holder.views[1].transcript_hash == a.transcript_hash
