from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import socket
import threading
import tracemalloc
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from privledger.node.compute import RayExecutor
from privledger.protocols.channel import channel_pair
from privledger.protocols.psi import buckets, cuckoo, keyed
from privledger.protocols.psi.buckets import BucketedResult, SocketChannel, run_bucketed_psi
from privledger.protocols.psi.common import PsiHandshakeError
from tests.ray_cluster import RayCluster

TIMEOUT = 60.0
KEY = bytes(range(16))


def _write_csv(path: Path, items: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "other"])
        for index, item in enumerate(items):
            writer.writerow([item, index])
    return path


def _run_both(
    tmp: Path,
    x: list[str],
    y: list[str],
    *,
    count: int = 4,
    workers: int = 0,
    reveal: bool = True,
    key: bytes | None = KEY,
    requester_side_a: bool = True,
    executor: Executor | None = None,
) -> tuple[BucketedResult, BucketedResult]:
    rx = _write_csv(tmp / "requester.csv", x)
    py = _write_csv(tmp / "provider.csv", y)
    a, b = channel_pair()
    rc, pc = (a, b) if requester_side_a else (b, a)
    common = {
        "buckets": count,
        "workers": workers,
        "reveal_to_provider": reveal,
        "timeout": TIMEOUT,
        "partition_key": key,
        "work_dir": tmp,
        "executor": executor,
    }
    with ThreadPoolExecutor(2) as pool:
        r = pool.submit(run_bucketed_psi, rc, "requester", rx, "id", tmp / "r.out", **common)
        p = pool.submit(run_bucketed_psi, pc, "provider", py, "id", tmp / "p.out", **common)
        results = r.result(), p.result()
    assert rc.transcript_hash == pc.transcript_hash
    return results


def _lines(path: Path) -> list[str]:
    """The items of a JSON Lines output."""
    return [json.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]


def _check(tmp: Path, x: list[str], y: list[str], **kwargs: object) -> BucketedResult:
    reveal = bool(kwargs.get("reveal", True))
    requester, provider = _run_both(tmp, x, y, **kwargs)  # type: ignore[arg-type]
    expected = set(x) & set(y)
    got = _lines(tmp / "r.out")
    assert len(got) == len(expected) and set(got) == expected
    assert requester.matched == len(expected) and requester.learned_output
    assert requester.rows == len(x) and requester.distinct == len(set(x))
    assert provider.rows == len(y) and provider.distinct == len(set(y))
    assert requester.peer_rows == len(y) and provider.peer_rows == len(x)
    if reveal:
        assert _lines(tmp / "p.out") == got
        assert provider.output_sha256 == requester.output_sha256
    else:
        assert not provider.learned_output and provider.output is None
        assert not (tmp / "p.out").exists()
    # digest: SHA-256(domain || SHA-256(lengths) || SHA-256(data)) over the output order
    data = [item.encode() for item in got]
    lengths = b"".join(len(item).to_bytes(8, "big") for item in data)
    digest = hashlib.sha256(buckets.DIGEST_DOMAIN)
    digest.update(hashlib.sha256(lengths).digest())
    digest.update(hashlib.sha256(b"".join(data)).digest())
    assert requester.output_sha256 == digest.hexdigest()
    # inside each bucket the output is sorted (bucket order, then bytes order)
    keys = cuckoo.item_keys(*cuckoo.pack_items(data), keyed.ITEM_KEY_DOMAIN)
    owner = buckets.bucket_of(keys, KEY, requester.buckets) if kwargs.get("key", KEY) else None
    if owner is not None:
        assert list(zip(owner.tolist(), data, strict=True)) == sorted(
            zip(owner.tolist(), data, strict=True)
        )
    return requester


def _phones(rng: random.Random, count: int) -> list[str]:
    return [f"+86{rng.randrange(10**9, 10**10)}" for _ in range(count)]


def test_random_sets_match_python_sets(tmp_path: Path) -> None:
    rng = random.Random(1)
    shared = _phones(rng, 700)
    x = shared + _phones(rng, 1300)
    y = _phones(rng, 900) + shared
    rng.shuffle(x)
    _check(tmp_path, x, y, count=5)


def test_mixed_lengths_unicode_and_duplicates(tmp_path: Path) -> None:
    rng = random.Random(2)
    pool = ["", "a", "żółw 🐢", "x" * 15, "x" * 16, "y" * 300, "Ελληνικά", "0", "00"]
    pool += [rng.randbytes(rng.randint(1, 30)).hex() for _ in range(300)]
    x = [rng.choice(pool) for _ in range(800)]
    y = [rng.choice(pool) for _ in range(500)]
    _check(tmp_path, x, y, count=3, reveal=False, requester_side_a=False)


@pytest.mark.parametrize(
    ("x", "y"),
    [([], ["a", "b"]), (["a", "b"], []), ([], []), (["same"] * 50, ["same"] * 7)],
)
def test_empty_and_degenerate_sets(tmp_path: Path, x: list[str], y: list[str]) -> None:
    _check(tmp_path, x, y, count=4)


def test_identical_and_disjoint_sets(tmp_path: Path) -> None:
    items = [f"id-{i}" for i in range(1000)]
    _check(tmp_path, items, list(reversed(items)), count=7)
    (tmp_path / "r.out").unlink()
    (tmp_path / "p.out").unlink()
    _check(tmp_path, items, [f"other-{i}" for i in range(1000)], count=7)


def test_all_items_in_one_bucket(tmp_path: Path) -> None:
    rng = random.Random(4)
    candidates = [f"k{i}" for i in range(20000)]
    keys = cuckoo.item_keys(
        *cuckoo.pack_items([c.encode() for c in candidates]), keyed.ITEM_KEY_DOMAIN
    )
    owner = buckets.bucket_of(keys, KEY, 8)
    same = [c for c, b in zip(candidates, owner.tolist(), strict=True) if b == 3]
    assert len(same) > 1000
    x, y = same[:1500], [*same[500:], "elsewhere"]
    rng.shuffle(y)
    result = _check(tmp_path, x, y, count=8)
    assert result.bucket_size == len(x)  # every bucket padded to the full bucket


def test_partition_key_drawn_by_side_a(tmp_path: Path) -> None:
    rng = random.Random(5)
    shared = _phones(rng, 100)
    requester, provider = _run_both(
        tmp_path, shared + _phones(rng, 50), _phones(rng, 80) + shared, key=None, count=3
    )
    assert requester.matched == 100 and provider.matched == 100


def test_partition_is_deterministic_and_streams(tmp_path: Path) -> None:
    rng = random.Random(6)
    items = _phones(rng, 5000) + ["dup"] * 10
    source = _write_csv(tmp_path / "in.csv", items)
    one = buckets.partition(
        source, "id", tmp_path / "one", buckets=6, partition_key=KEY, chunk_rows=1000
    )
    two = buckets.partition(
        source, "id", tmp_path / "two", buckets=6, partition_key=KEY, chunk_rows=777
    )
    assert one.rows == two.rows and one.total == len(items)
    seen: dict[bytes, int] = {}
    for b, (p1, p2) in enumerate(zip(one.paths, two.paths, strict=True)):
        first, second = buckets.read_bucket(p1).to_pylist(), buckets.read_bucket(p2).to_pylist()
        assert first == second and len(first) == one.rows[b]
        for item in first:
            assert seen.setdefault(item, b) == b  # equal items share a bucket
    assert set(seen) == {item.encode() for item in items}
    other = buckets.partition(source, "id", tmp_path / "k", buckets=6, partition_key=bytes(16))
    assert other.rows != one.rows


def test_parquet_input_and_output(tmp_path: Path) -> None:
    rng = random.Random(7)
    shared = _phones(rng, 300)
    x = shared + _phones(rng, 200) + ["with\nnewline"]
    y = _phones(rng, 100) + shared + ["with\nnewline"]
    rx, py = tmp_path / "r.parquet", tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": [*x, None]}), rx, row_group_size=97)
    pq.write_table(pa.table({"id": pa.array(y, type=pa.large_string())}), py)
    a, b = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        args = {
            "buckets": 2,
            "workers": 0,
            "timeout": TIMEOUT,
            "partition_key": KEY,
            "chunk_rows": 50,
        }
        r = pool.submit(run_bucketed_psi, a, "requester", rx, "id", tmp_path / "o.parquet", **args)
        p = pool.submit(run_bucketed_psi, b, "provider", py, "id", tmp_path / "n.parquet", **args)
        requester, _ = r.result(), p.result()
    got = pq.read_table(tmp_path / "o.parquet").column("item").to_pylist()
    assert sorted(got) == sorted(item.encode() for item in set(x) & set(y))
    assert requester.rows == len(x)  # the null is skipped


def test_json_lines_output_holds_any_text(tmp_path: Path) -> None:
    odd = ["a\nb", "c\rd", "e\u2028f", "g\x1eh", 'quoted "i"', "back\\slash", "", "é 🙂"]
    _check(tmp_path, [*odd, "x only"], ["y only", *odd], count=2)


def test_mismatched_bucket_count_is_refused(tmp_path: Path) -> None:
    rx = _write_csv(tmp_path / "r.csv", ["a"])
    a, b = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        common = {"timeout": TIMEOUT, "partition_key": KEY, "workers": 0, "work_dir": tmp_path}
        r = pool.submit(
            run_bucketed_psi, a, "requester", rx, "id", tmp_path / "1", buckets=2, **common
        )
        p = pool.submit(
            run_bucketed_psi, b, "provider", rx, "id", tmp_path / "2", buckets=3, **common
        )
        for future in (r, p):
            with pytest.raises(PsiHandshakeError):
                future.result()
    assert list(tmp_path.glob("pl-psi-buckets-*")) == []  # bucket files removed


def test_process_pool_over_a_socket_channel(tmp_path: Path) -> None:
    rng = random.Random(8)
    shared = _phones(rng, 3000)
    x, y = shared + _phones(rng, 4000), _phones(rng, 2000) + shared
    rx, py = _write_csv(tmp_path / "r.csv", x), _write_csv(tmp_path / "p.csv", y)
    left, right = socket.socketpair()
    a, b = SocketChannel("a", left), SocketChannel("b", right)
    common = {"buckets": 5, "workers": 2, "reveal_to_provider": True, "timeout": TIMEOUT}
    out: dict[str, BucketedResult] = {}

    def provider() -> None:
        out["p"] = run_bucketed_psi(b, "provider", py, "id", tmp_path / "p.out", **common)  # type: ignore[arg-type]

    thread = threading.Thread(target=provider)
    thread.start()
    requester = run_bucketed_psi(a, "requester", rx, "id", tmp_path / "r.out", **common)  # type: ignore[arg-type]
    thread.join()
    assert set(_lines(tmp_path / "r.out")) == set(shared) and requester.matched == 3000
    assert out["p"].output_sha256 == requester.output_sha256
    assert a.transcript_hash == b.transcript_hash
    a.close()
    b.close()


def test_memory_is_bounded_by_the_bucket_not_the_file(tmp_path: Path) -> None:
    n = 200_000
    x = [f"r{i}" for i in range(n)]
    y = [f"r{i}" for i in range(0, 2 * n, 2)]  # n / 2 in common
    rx, py = _write_csv(tmp_path / "r.csv", x), _write_csv(tmp_path / "p.csv", y)
    del x, y
    a, b = channel_pair()
    common = {
        "buckets": 32,
        "workers": 0,
        "timeout": TIMEOUT,
        "partition_key": KEY,
        "chunk_rows": 8192,
    }
    pool_before = pa.default_memory_pool().max_memory()
    tracemalloc.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            r = pool.submit(
                run_bucketed_psi, a, "requester", rx, "id", tmp_path / "r.out", **common
            )
            p = pool.submit(run_bucketed_psi, b, "provider", py, "id", tmp_path / "p.out", **common)
            requester, _ = r.result(), p.result()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert requester.matched == n // 2
    # With buckets=1 (the whole set at once) this run peaks at ~100 MB traced; with 32 buckets
    # at ~10 MB.
    assert peak < 30 * 2**20, peak / 2**20
    arrow_peak = pa.default_memory_pool().max_memory()
    assert arrow_peak is None or arrow_peak - (pool_before or 0) < 64 * 2**20


def test_bucket_of_spreads_evenly() -> None:
    keys = cuckoo.dummy_keys(100_000)
    counts = np.bincount(buckets.bucket_of(keys, KEY, 10), minlength=10)
    assert counts.min() > 9_000 and counts.max() < 11_000


@pytest.mark.ray
def test_a_ray_cluster_runs_the_buckets_to_the_local_pools_result(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    rng = random.Random(9)
    shared = _phones(rng, 2000)
    x, y = shared + _phones(rng, 3000), _phones(rng, 1500) + shared
    outputs = {}
    with RayExecutor(ray_cluster.address, workers=2) as cluster:  # both parties share its actors
        for engine, executor in (("ray", cluster), ("pool", None)):
            run = tmp_path / engine
            run.mkdir()
            requester, _ = _run_both(run, x, y, count=4, workers=2, executor=executor)
            outputs[engine] = (run / "r.out").read_bytes(), (run / "p.out").read_bytes()
            assert requester.matched == len(shared)
        peaks = cluster.worker_peaks()
    assert outputs["ray"] == outputs["pool"]  # the same items in the same order, both parties
    assert set(_lines(tmp_path / "ray" / "r.out")) == set(shared)
    assert len({peak.node for peak in peaks}) == 2  # buckets ran on the head and the second node
    assert all(peak.pid != os.getpid() and peak.peak_rss_mb > 50 for peak in peaks)
