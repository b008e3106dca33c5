"""Multi-party set operations (F8): 3-party intersection and union, 2-party difference and the
anonymous membership query, each at ``--n`` items per party. Prints one JSON object per operation
(see shared BENCHMARKS.md).

Parties run in-process (threads, in-memory channels): this measures the protocols, not a network.
Sets are random 16-character phone-like strings; every pair of parties shares about half of its
items and all three about a quarter. Every result is checked against Python set operations before
its time is reported; times are medians over ``--repeat`` runs. ``peak_rss_mb`` is this process's
peak resident set so far (all parties together), so it only grows from one operation to the next.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from privledger.protocols.psi import multiparty


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_sets(n: int, seed: int) -> list[list[bytes]]:
    """Three sets of ``n`` distinct items drawn from a pool of ``2 n``."""
    rng = random.Random(seed)
    pool = [f"+86{x:013d}".encode() for x in rng.sample(range(10**13), 2 * n)]
    return [rng.sample(pool, n) for _ in range(3)]


def _measure(run: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def _record(
    op: str, parties: int, n: int, repeat: int, seconds: float, size: int
) -> dict[str, Any]:
    return {
        "bench": "mpsi",
        "op": op,
        "params": {
            "n_per_party": n,
            "repeat": repeat,
            "mode": "in-process",
            "security": "semi-honest",
        },
        "parties": parties,
        "n": n,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "result_size": size,
    }


def bench_all(n: int, repeat: int, seed: int) -> list[dict[str, Any]]:
    sets = make_sets(n, seed)
    plain = [set(s) for s in sets]
    records = []

    def intersection() -> int:
        result = multiparty.run_local("intersection", sets)[0].items
        if result != sorted(plain[0] & plain[1] & plain[2]):
            raise SystemExit("three-party intersection differs from Python sets")
        return len(result)

    def union() -> int:
        result = multiparty.run_local("union", sets)[0].items
        if result != sorted(plain[0] | plain[1] | plain[2]):
            raise SystemExit("three-party union differs from Python sets")
        return len(result)

    def difference() -> int:
        result = multiparty.local_difference(sets[0], sets[1])
        if result != sorted(plain[0] - plain[1]):
            raise SystemExit("two-party difference differs from Python sets")
        return len(result)

    present, absent = sets[1][0], b"+86-not-a-number"

    def membership() -> int:
        hit = multiparty.local_membership(present, sets[1])
        miss = multiparty.local_membership(absent, sets[1])
        if not hit.member or miss.member or hit.holder_size != n:
            raise SystemExit("membership query answered wrongly")
        return 1

    for op, parties, run in (
        ("intersection", 3, intersection),
        ("union", 3, union),
        ("difference", 2, difference),
        ("membership", 2, membership),
    ):
        seconds, size = _measure(run, repeat)
        if op == "membership":
            seconds /= 2  # two queries (a hit and a miss) per run
        records.append(_record(op, parties, n, repeat, seconds, size))
    return records


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1 << 18, help="items per party")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test sets")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    for record in bench_all(args.n, args.repeat, args.seed):
        print(json.dumps(record) if args.json else json.dumps(record, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
