"""Keyword PIR (OPRF + SimplePIR) on ``--n`` records of 32-byte values. Prints one JSON object
(see shared BENCHMARKS.md).

Holder and querier run in this process (two threads, in-memory channel). The holder builds the
table offline (OPRF over all keys on a process pool, layout, hint); the querier downloads the
setup and hint once (``offline_bytes``), then runs ``--repeat`` single-key sessions with the
cached setup, alternating present and absent keys, and one session with a batch of ``--batch``
keys (half present). Every answer is checked against the plaintext table before any time is
reported. ``server_ms`` is the median holder computing time for one key (OPRF evaluation + PIR
answer), ``client_ms`` the median querier computing time (blinding, query, decoding);
``seconds`` the median wall time of a single-key session; ``query_bytes`` / ``answer_bytes`` the
bytes each way in a single-key session (headers included); ``batch_server_ms_per_query`` the
holder time per key in the batch session.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from privledger.protocols.channel import channel_pair
from privledger.protocols.pir import keyword
from privledger.protocols.pir.keyword import HolderView, KeywordResult, KeywordTable, QuerierSetup

VALUE_BYTES = 32


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _session(
    table: KeywordTable, keys: list[bytes], mode: keyword.Mode, setup: QuerierSetup | None
) -> tuple[KeywordResult, HolderView, float, int, int]:
    querier, holder = channel_pair()
    started = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:
        view = pool.submit(keyword.run_holder, holder, table, timeout=600)
        result = keyword.run_querier(querier, keys, mode=mode, setup=setup, timeout=600)
        seen = view.result()
    wall = time.perf_counter() - started
    return result, seen, wall, querier.bytes_sent, holder.bytes_sent


def _check(result: KeywordResult, keys: list[bytes], items: dict[bytes, bytes]) -> None:
    for key, value in zip(keys, result.values, strict=True):
        if value != items.get(key):
            raise SystemExit(f"wrong answer for key {key!r}: {value!r} vs {items.get(key)!r}")


def bench(n: int, mode: keyword.Mode, batch: int, repeat: int, k: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    raw_keys = rng.choice(1 << 62, size=2 * n, replace=False)
    keys = [int(x).to_bytes(8, "big") for x in raw_keys[:n]]
    absent = [int(x).to_bytes(8, "big") for x in raw_keys[n:]]
    values = rng.integers(0, 256, size=(n, VALUE_BYTES), dtype=np.uint8)
    items = {key: values[i].tobytes() for i, key in enumerate(keys)}

    started = time.perf_counter()
    table = KeywordTable.build(items, mode=mode, k=k)
    offline_seconds = time.perf_counter() - started

    first, view, _, _, _ = _session(table, [keys[0]], mode, None)
    _check(first, [keys[0]], items)
    if mode == "pir" and not view.sent_hint:
        raise SystemExit("the first session did not transfer the hint")

    server, client, walls = [], [], []
    query_bytes = answer_bytes = 0
    for i in range(repeat):
        key = keys[(i * 7919) % n] if i % 2 == 0 else absent[i]
        result, view, wall, sent, received = _session(table, [key], mode, first.setup)
        _check(result, [key], items)
        if view.sent_hint:
            raise SystemExit("the hint was sent again despite the cached setup")
        server.append(view.server_seconds)
        client.append(result.client_seconds)
        walls.append(wall)
        query_bytes, answer_bytes = sent, received

    batch_keys = [keys[(i * 104729) % n] for i in range(batch // 2)] + absent[: batch - batch // 2]
    result, view, batch_wall, _, _ = _session(table, batch_keys, mode, first.setup)
    _check(result, batch_keys, items)

    return {
        "bench": "pir",
        "params": {
            "n": n,
            "value_bytes": VALUE_BYTES,
            "mode": mode,
            "k": k if mode == "bucket" else None,
            "buckets": table.buckets,
            "capacity": table.capacity,
            "lwe_n": 1024,
            "log_q": 32,
            "p": 256,
            "sigma": 6.4,
            "repeat": repeat,
            "batch": batch,
        },
        "seconds": statistics.median(walls),
        "peak_rss_mb": _peak_rss_mb(),
        "server_ms": 1e3 * statistics.median(server),
        "client_ms": 1e3 * statistics.median(client),
        "query_bytes": query_bytes,
        "answer_bytes": answer_bytes,
        "offline_bytes": first.offline_bytes,
        "offline_seconds": offline_seconds,
        "offline_oprf_layout_seconds": table.build_seconds,
        "offline_hint_seconds": table.hint_seconds,
        "batch_server_ms_per_query": 1e3 * view.server_seconds / batch,
        "batch_client_ms_per_query": 1e3 * result.client_seconds / batch,
        "batch_seconds": batch_wall,
        "verified": True,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="records")
    parser.add_argument("--mode", choices=("pir", "bucket"), default="pir")
    parser.add_argument("--k", type=int, default=keyword.DEFAULT_K, help="bucket mode: keys/bucket")
    parser.add_argument("--batch", type=int, default=16, help="keys in the batch session")
    parser.add_argument("--repeat", type=int, default=7, help="single-key sessions")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    args = parser.parse_args(argv)
    if args.n < 2 or args.batch < 1 or args.repeat < 1:
        parser.error("--n must be >= 2, --batch and --repeat >= 1")
    mode: keyword.Mode = "pir" if args.mode == "pir" else "bucket"
    print(json.dumps(bench(args.n, mode, args.batch, args.repeat, args.k)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
