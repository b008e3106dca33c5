"""Joint statistics and the multi-lending check by secret sharing, against plaintext numpy.

Parties run in-process (threads, in-memory channels): this measures the protocols, not a network.
Prints one JSON object per measurement (see shared BENCHMARKS.md); every result is checked against
numpy before its time is reported; times are medians over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from privledger.protocols.mpc import dealer, sharing
from privledger.protocols.mpc.lending import LoanBook, customer_key, multi_lending_check
from privledger.protocols.mpc.stats import joint_stats


def _median_seconds(run: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_stats(parties: int, rows: int, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    data = [rng.normal(100, 15, rows) for _ in range(parties)]
    pooled = np.concatenate(data)
    results: list[Any] = []
    with dealer.local_mesh(parties, timeout=60) as mesh:

        def secure() -> None:
            outcome = mesh.run(
                lambda party: joint_stats(party, data[party.index], requester=0, min_group_size=10)
            )[0]
            if outcome is None or outcome.count != pooled.size:
                raise SystemExit("joint statistics returned no result or a wrong count")
            if (
                abs(outcome.mean - pooled.mean()) > 1e-6
                or abs(outcome.variance - pooled.var()) > 1e-4
            ):
                raise SystemExit("joint statistics differ from numpy beyond fixed-point precision")
            results.append(outcome)

        seconds = _median_seconds(secure, repeat)

    def plaintext() -> None:
        total = sum(chunk.sum() for chunk in data)
        mean = total / pooled.size
        sum(((chunk - mean) ** 2).sum() for chunk in data)

    outcome = results[-1]
    return {
        "bench": "stats",
        "op": "sum/mean/var",
        "params": {"parties": parties, "rows": rows, "repeat": repeat, "mode": "in-process"},
        "parties": parties,
        "rows": rows,
        "seconds": round(seconds, 4),
        "peer": "plaintext numpy",
        "peer_seconds": round(_median_seconds(plaintext, repeat), 5),
        "abs_error": {
            "sum": float(abs(outcome.sum - pooled.sum())),
            "mean": float(abs(outcome.mean - pooled.mean())),
            "variance": float(abs(outcome.variance - pooled.var())),
        },
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def bench_lending(banks: int, customers: int, repeat: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    target = customer_key("customer-under-review")
    books = []
    for bank in range(banks):
        keys = np.array(
            [customer_key(f"bank{bank}-{i}") for i in range(customers)], dtype=np.uint64
        )
        keys[customers // 2] = target
        books.append(LoanBook.from_arrays(keys, rng.integers(0, 10**6, customers)))
    truth = sum(int(book.amounts[book.keys == target][0]) for book in books)
    measurements = []
    modes: tuple[Literal["total", "exceeds"], ...] = ("total", "exceeds")
    for mode in modes:
        with dealer.local_mesh(banks + 1, timeout=60) as mesh:

            def secure(mode: Literal["total", "exceeds"] = mode) -> None:
                def role(party: sharing.Party) -> Any:
                    if party.index == 0:
                        limit = truth if mode == "exceeds" else None
                        return multi_lending_check(
                            party,
                            requester=0,
                            mode=mode,
                            customer_id="customer-under-review",
                            limit=limit,
                        )
                    return multi_lending_check(
                        party, requester=0, mode=mode, book=books[party.index - 1]
                    )

                outcome = mesh.run(role)[0]
                correct = outcome.total == truth if mode == "total" else outcome.exceeds is False
                if not correct:
                    raise SystemExit(f"multi-lending {mode} result is wrong")

            seconds = _median_seconds(secure, repeat)

        def plaintext() -> None:
            sum(int(book.amounts[book.keys == target].sum()) for book in books)

        measurements.append(
            {
                "bench": "stats",
                "op": f"multi-lending-{mode}",
                "params": {
                    "banks": banks,
                    "customers_per_bank": customers,
                    "repeat": repeat,
                    "mode": "in-process",
                    "limit": "equal to the true total",
                },
                "parties": banks + 1,
                "rows": customers,
                "seconds": round(seconds, 4),
                "peer": "plaintext numpy",
                "peer_seconds": round(_median_seconds(plaintext, repeat), 5),
                "peak_rss_mb": round(_peak_rss_mb(), 1),
            }
        )
    return measurements


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, default=5, help="data parties (and banks)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per party")
    parser.add_argument("--customers", type=int, default=100_000, help="loans per bank")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    results = [bench_stats(args.parties, args.rows, args.repeat)]
    results += bench_lending(args.parties, args.customers, args.repeat)
    for result in results:
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
