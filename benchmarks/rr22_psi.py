"""RR22 PSI against KKRT PSI: two spawned processes over a socketpair, in the same run.

For every ``--n`` and each of ``--repeat`` rounds, runs each protocol in ``--protocols`` (default
``rr22,kkrt``, interleaved so that load changes hit both) between two fresh processes, each
building its own Arrow column of ``n`` phone numbers (half of them shared) before the clock
starts and then calling the protocol's ``run_psi_column`` (the interface the node's runner
uses), after an untimed run on 2^12 items (as the node benchmark's warm-up task: RR22's numba
kernels load on their first call, ~1-2 s in a fresh process), with glibc's malloc tuned as
in a node process (:func:`privledger.api.server.tune_allocator`). The requester's output is
checked against the known shared set before a time is reported. Prints one JSON object per
run (``bench``, ``params``, ``protocol``, ``n``, ``seconds`` = the requester's
``run_psi_column`` wall time, ``provider_seconds``, ``party_cpu_seconds`` (each party's
process CPU time in the call: on a shared machine the load-independent part), ``bytes_sent``
by both parties, ``bits_per_item``, ``intersection``, ``peak_rss_mb``) and, per ``n``, a
summary with the medians (wall, and CPU of the busier party), ``ratio`` = median KKRT /
median RR22 seconds and, with ``--peer openmined-psi``, OpenMined's time on the same
sets (``peer_seconds``) and its ratio to each protocol.

No node, no encryption (the transport's AES-GCM would add the same per-byte cost to both).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from privledger.protocols.psi.common import Role

PROTOCOLS = ("rr22", "kkrt")
WARMUP_ITEMS = 1 << 12


def _column(role: str, n: int) -> Any:
    """``n`` distinct phone numbers: the first ``n // 2`` shared by both roles."""
    import pyarrow as pa

    shared = n // 2
    own_start = 10**9 + (n if role == "requester" else 2 * n)
    numbers = [f"+86{10**9 + i}" for i in range(shared)]
    numbers += [f"+86{own_start + i}" for i in range(n - shared)]
    numbers.reverse()  # not in sorted order
    return pa.array(numbers, type=pa.string())


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _party(
    role: str, protocol: str, n: int, sock: socket.socket, side: str, ready: Any, results: Any
) -> None:
    from privledger.api.server import tune_allocator
    from privledger.protocols.psi import kkrt, rr22
    from privledger.protocols.psi.buckets import SocketChannel

    tune_allocator()  # malloc as in a node process: freed buffers kept for the next run
    run_psi_column = rr22.run_psi_column if protocol == "rr22" else kkrt.run_psi_column
    channel = SocketChannel(side, sock)  # type: ignore[arg-type]
    party_role: Role = "requester" if role == "requester" else "provider"
    # an untimed run on WARMUP_ITEMS first, as a node's first task: RR22's kernels are
    # compiled (or loaded from numba's cache, ~1-2 s in a fresh process) on their first call
    run_psi_column(channel, _column(role, WARMUP_ITEMS), role=party_role, timeout=600)
    sent_before = channel.bytes_sent
    column = _column(role, n)
    _reset_peak()
    ready.wait()
    started, started_cpu = time.perf_counter(), time.process_time()
    result: Any = run_psi_column(channel, column, role=party_role, timeout=600)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    items = result.intersection.to_pylist() if role == "requester" else []
    results.put(
        (
            role,
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "bytes_sent": channel.bytes_sent - sent_before,
                "peak_rss_mb": _peak_rss_mb(),
                "items": items,
            },
        )
    )
    channel.close()


def run_once(protocol: str, n: int, timeout: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = context.Barrier(2)
    left, right = socket.socketpair()
    parties = [
        context.Process(target=_party, args=(role, protocol, n, sock, side, ready, results))
        for role, side, sock in (("requester", "a", left), ("provider", "b", right))
    ]
    for party in parties:
        party.start()
    reports = dict(results.get(timeout=timeout) for _ in parties)
    for party in parties:
        party.join()
    left.close()
    right.close()
    got = reports["requester"]["items"]
    expected = {f"+86{10**9 + i}".encode() for i in range(n // 2)}
    if len(got) != len(expected) or set(got) != expected:
        raise SystemExit(f"{protocol} at n={n}: wrong intersection ({len(got)} items)")
    sent = sum(r["bytes_sent"] for r in reports.values())
    return {
        "bench": "psi",
        "params": {
            "n": n,
            "overlap": 0.5,
            "protocol": protocol,
            "cpus": os.cpu_count(),
            "transport": "two spawned processes, socketpair, no node, no encryption",
            "load": os.getloadavg()[0],
        },
        "protocol": protocol,
        "n": n,
        "seconds": round(reports["requester"]["seconds"], 4),
        "provider_seconds": round(reports["provider"]["seconds"], 4),
        "party_cpu_seconds": {role: round(r["cpu_seconds"], 3) for role, r in reports.items()},
        "bytes_sent": sent,
        "bits_per_item": round(8 * sent / n, 1),
        "intersection": len(got),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in reports.values()), 1),
        "party_peak_rss_mb": {role: round(r["peak_rss_mb"], 1) for role, r in reports.items()},
    }


def _openmined_seconds(n: int) -> float:
    """OpenMined ECDH-PSI on the same two sets, checked; its wall time."""
    from psi import run_openmined  # benchmarks/psi.py: the project's openmined-psi runner

    requester = [item.decode() for item in _column("requester", n).cast("binary").to_pylist()]
    provider = [item.decode() for item in _column("provider", n).cast("binary").to_pylist()]
    peer = run_openmined(requester, provider)
    if peer["items"] != {f"+86{10**9 + i}" for i in range(n // 2)}:
        raise SystemExit("openmined-psi intersection is wrong")
    return float(peer["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, action="append", help="set size (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--peer",
        choices=["openmined-psi"],
        help="also run OpenMined's C++ ECDH-PSI on the same sets (in this process, as "
        "benchmarks/psi.py does) and report peer_seconds and peer_ratio = peer / RR22",
    )
    args = parser.parse_args()
    sizes = args.n or [1 << 16, 1 << 20]
    protocols = [p for p in args.protocols.split(",") if p]
    if any(p not in PROTOCOLS for p in protocols):
        print(f"protocols are {PROTOCOLS}", file=sys.stderr)
        return 2
    for n in sizes:
        seconds: dict[str, list[float]] = {p: [] for p in protocols}
        cpu: dict[str, list[float]] = {p: [] for p in protocols}
        bits: dict[str, float] = {}
        for _ in range(args.repeat):
            for protocol in protocols:
                report = run_once(protocol, n, args.timeout)
                seconds[protocol].append(report["seconds"])
                cpu[protocol].append(max(report["party_cpu_seconds"].values()))
                bits[protocol] = report["bits_per_item"]
                print(json.dumps(report), flush=True)
        medians = {p: statistics.median(s) for p, s in seconds.items()}
        summary: dict[str, Any] = {
            "bench": "psi_summary",
            "params": {"n": n, "repeat": args.repeat, "load": os.getloadavg()[0]},
            "seconds": round(medians.get("rr22", 0.0), 4),
            "median_seconds": {p: round(s, 4) for p, s in medians.items()},
            "median_busiest_party_cpu_seconds": {
                p: round(statistics.median(c), 3) for p, c in cpu.items()
            },
            "bits_per_item": bits,
            "peak_rss_mb": 0.0,
        }
        if "rr22" in medians and "kkrt" in medians:
            summary["ratio"] = round(medians["kkrt"] / medians["rr22"], 2)
        if args.peer == "openmined-psi":
            peer_seconds = _openmined_seconds(n)
            summary["peer_seconds"] = round(peer_seconds, 3)
            for protocol, median in medians.items():
                summary[f"peer_ratio_{protocol}"] = round(peer_seconds / median, 1)
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
