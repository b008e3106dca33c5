"""Two-party PSI between two real node processes over the real encrypted channel. Prints one JSON
object (see shared BENCHMARKS.md).

A fresh local consortium (anvil, contracts, organisations, one node process per organisation) is
started in a temporary directory. The telecom node (requester) and the bank-a node (provider) each
get a CSV of ``--n`` phone numbers, half of them shared; the bank's dataset is granted to the
telecom, the task is submitted through the telecom node's API and followed until it is settled on
chain. The intersection returned by the API is checked against the plaintext intersection before
any time is reported. ``seconds`` (and ``provider_seconds``) is a node's own protocol time as its
API reports it: from the channel's hello exchange -- both nodes have loaded their input -- until
the peer confirmed every frame; ``task_seconds`` runs from submission to settlement on chain.

``--peer openmined-psi`` also runs OpenMined's C++ ECDH-PSI (``pip install openmined-psi``, the
``bench`` extra) in this process on the same two sets, checks its intersection and reports
``peer_seconds`` and ``ratio`` = peer_seconds / seconds. ``--peer kkrt`` (any other protocol of
:data:`PROTOCOLS`) runs that protocol as a further task between the same two nodes, after the
first, on the same datasets (one grant for all tasks), checks its output the same way and
reports its measurements under ``peers``. The nodes then first run one unreported task of
``--protocol`` (``params.warmup``): a node's first task pays for growing its heap. ``--peer`` is
repeatable (``peer_seconds`` and ``ratio`` are the first peer's, every peer is in ``peers``),
e.g. ``bench psi --protocol rr22 --n 1048576 --peer kkrt --json``. ``bits_per_item`` is
8 ``bytes_sent`` / n, both directions.

``--buckets B --rows N`` instead runs the bucketed, streamed KKRT PSI
(:mod:`privledger.protocols.psi.buckets`) between two OS processes (requester and provider, each
with ``--workers`` pool processes) over a loopback TCP socket: two CSV files of ``N`` phone
numbers each, ``--overlap`` of them shared, are generated streaming into ``--tmp`` (and deleted
afterwards). Every line of the requester's output is parsed back to its row number and checked to
be a distinct shared row, and the count must equal the known overlap, before any time is
reported. ``peak_rss_mb`` is per party the larger of its main process's peak RSS and the sampled
peak of the summed RSS of its process tree (main, forkserver, pool workers). ``seconds`` is the
wall time from starting the two party processes to both reporting (interpreter and pool start-up
included); ``requester_seconds`` the requester's ``run_bucketed_psi`` call (partitioning
included). ``worker_peak_rss_mb`` lists per party every worker process that ran buckets with its
own peak RSS (measured in the worker, :mod:`privledger.node.compute`).

``--engine ray --ray-address HOST:PORT`` runs both parties' buckets on a running Ray cluster (the
``cluster`` extra; each party connects as its own driver) instead of each party's local pool;
``--peer pool`` then runs the same files through the local pools too, in the same invocation,
and adds ``peer_seconds`` (and the pool's fields under ``peer``). A two-node cluster on one
machine, started as a user would (the second node needs ports of its own):

    ray start --head --port 6380 --num-cpus 2 --object-store-memory 2000000000 \
        --include-dashboard false --disable-usage-stats
    ray start --address HOST:6380 --num-cpus 2 --object-store-memory 2000000000 \
        --dashboard-agent-listen-port 52366 --disable-usage-stats
    privledger bench psi --buckets 20 --rows 10000000 --engine ray --ray-address HOST:6380 \
        --peer pool --json

(HOST: the address the head prints; Ray does not listen on 127.0.0.1 alone.) The workers read
the parties' bucket files by path, so ``--tmp`` must be visible at the same path on every node.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the node stack is imported lazily: bucketed mode's processes do not need it
    from privledger.demo import NodeProcess

PROTOCOLS = ("ecdh", "kkrt", "rr22")
PEERS = ("openmined-psi", *PROTOCOLS)  # a protocol peer runs as a second task (nodes)
ENGINES = ("process", "ray")
BUCKET_PEERS = ("pool",)  # --buckets --engine ray: the local process pools, same run
REQUESTER, PROVIDER = "telecom", "bank-a"
FEE_WEI = 10**16
PEER_FPR = 1e-9  # RAW is exact up to hash collisions; the rate is only a sizing hint


def make_sets(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Two sets of ``n`` distinct phone numbers sharing ``n // 2``, in random order."""
    rng = random.Random(seed)
    shared = n // 2
    numbers = [f"+86{x}" for x in rng.sample(range(10**9, 10**10), 2 * n - shared)]
    requester = numbers[:n]
    provider = numbers[:shared] + numbers[n:]
    rng.shuffle(requester)
    rng.shuffle(provider)
    return requester, provider


def write_csv(path: Path, phones: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "segment"])
        segments = ("retail", "sme", "premium")
        for index, phone in enumerate(phones):
            writer.writerow([phone, segments[index % 3]])


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set of a live process from /proc, in MiB; None if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stats() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, resident bytes, CPU ticks incl. reaped children) of every process."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        ticks = sum(int(rest[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        stats[int(entry.name)] = (int(rest[1]), int(rest[21]) * PAGE_SIZE, ticks)
    return stats


def _tree(stats: dict[int, tuple[int, int, int]], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            tree.append(pid)
            todo.extend(children.get(pid, []))
    return tree


class TreeSampler:
    """Samples the process trees of the node processes (the node and its PSI worker pool):
    the peak of the summed RSS of each tree, and each tree's CPU seconds between start and stop
    (a worker's time is counted once its parent has reaped it)."""

    def __init__(self, roots: dict[str, int], interval_s: float = 0.05) -> None:
        self.roots = roots
        self.interval_s = interval_s
        self.peak_bytes = dict.fromkeys(roots, 0)
        self.max_processes = dict.fromkeys(roots, 0)
        self._cpu_start = self._cpu()
        self.cpu_seconds = dict.fromkeys(roots, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu(self) -> dict[str, int]:
        stats = _proc_stats()
        return {
            name: sum(stats[pid][2] for pid in _tree(stats, root))
            for name, root in self.roots.items()
        }

    def _sample(self) -> None:
        stats = _proc_stats()
        for name, root in self.roots.items():
            tree = _tree(stats, root)
            self.peak_bytes[name] = max(self.peak_bytes[name], sum(stats[p][1] for p in tree))
            self.max_processes[name] = max(self.max_processes[name], len(tree))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        end = self._cpu()
        for name in self.roots:
            self.cpu_seconds[name] = (end[name] - self._cpu_start[name]) / CLOCK_TICKS


def register(node: NodeProcess, path: Path, name: str) -> str:
    """Upload the file to the node (not timed) and register it."""
    from privledger.sdk import NodeClient

    with NodeClient(node.url, node.tokens["data_owner"]) as owner:
        return owner.register_file(path, name, level=2, unit_price=10**12).dataset_id


def wait_settled(node: NodeProcess, task_id: int, timeout_s: float) -> dict[str, Any]:
    """Long-poll the task (``waitS``: the node answers once it is settled or failed) rather than
    poll it, so that the client's requests do not compete with the protocol for the node."""
    deadline = time.monotonic() + timeout_s
    with node.client("operator") as client:
        while True:
            answer = client.get(f"/tasks/{task_id}", params={"waitS": 5}, timeout=30)
            task: dict[str, Any] = answer.raise_for_status().json()
            if task["status"] in ("settled", "failed"):
                return task
            if node.process.poll() is not None:
                raise SystemExit(node.exited())
            if time.monotonic() > deadline:
                raise SystemExit(f"task {task_id} still {task['status']} after {timeout_s:.0f}s")


def run_nodes(
    requester_phones: list[str],
    provider_phones: list[str],
    protocols: tuple[str, ...],
    timeout_s: float,
    *,
    warmup: bool = False,
) -> list[dict[str, Any]]:
    """One PSI task per protocol through the node API, from dataset registration to settlement,
    in one consortium (one grant allowing them all), one after the other; with ``warmup``, after
    an unreported first task of the first protocol (its output is checked too): a node's first
    task grows its heap (page faults) and took ~1.4x as long as the next at 2^20, whichever
    protocol ran first."""
    from privledger.config import Settings
    from privledger.demo import consortium
    from privledger.evm.anvil import free_port

    with tempfile.TemporaryDirectory(prefix="privledger-bench-psi-") as tmp:
        base = Path(tmp)
        settings = Settings(var_path=base / "var", deployments_path=base / "deployments")
        data_dir = base / "data"
        data_dir.mkdir()
        write_csv(data_dir / f"{REQUESTER}.csv", requester_phones)
        write_csv(data_dir / f"{PROVIDER}.csv", provider_phones)
        with consortium(settings, free_port()) as (_handle, info, nodes):
            org_ids = {org["name"]: org["orgId"] for org in info["orgs"]}
            requester, provider = nodes[REQUESTER], nodes[PROVIDER]
            mine = register(requester, data_dir / f"{REQUESTER}.csv", "bench-requester")
            theirs = register(provider, data_dir / f"{PROVIDER}.csv", "bench-provider")
            with provider.client("data_owner") as owner:
                granted = owner.post(
                    "/grants",
                    json={
                        "dataset": theirs,
                        "granteeOrg": org_ids[REQUESTER],
                        "kinds": ["psi"],
                        "expiresInS": 86_400,
                        "maxUses": len(protocols) + warmup,
                    },
                )
                if granted.status_code != 201:
                    raise SystemExit(f"grant failed: {granted.status_code} {granted.text}")
            inputs = [
                {"dataset": mine, "column": "phone"},
                {"dataset": theirs, "column": "phone"},
            ]
            order = (protocols[0], *protocols) if warmup else protocols
            return [
                _run_task(requester, provider, protocol, inputs, timeout_s) for protocol in order
            ]


def _run_task(
    requester: NodeProcess,
    provider: NodeProcess,
    protocol: str,
    inputs: list[dict[str, str]],
    timeout_s: float,
) -> dict[str, Any]:
    """Submit one PSI task at the requester's node, wait until it is settled, and measure it."""
    body = {
        "kind": "psi",
        "protocol": protocol,
        "inputs": inputs,
        "feeWei": FEE_WEI,
        "deadlineS": max(3_600, int(timeout_s) + 600),
    }
    roots = {REQUESTER: requester.process.pid, PROVIDER: provider.process.pid}
    before = {name: vm_hwm_mb(pid) for name, pid in roots.items()}
    with requester.client("operator") as operator, TreeSampler(roots) as sampler:
        started = time.perf_counter()
        submitted = operator.post("/tasks", json=body)
        if submitted.status_code != 201:
            raise SystemExit(f"submit failed: {submitted.status_code} {submitted.text}")
        task_id: int = submitted.json()["taskId"]
        final = wait_settled(requester, task_id, timeout_s)
        task_seconds = time.perf_counter() - started
    if final["status"] != "settled":
        raise SystemExit(f"task {task_id} failed: {final['localFailure']}")
    with requester.client("operator") as operator, TreeSampler(roots) as reading:
        items = result_items(operator, task_id)  # the check's read, after the task's window
    with provider.client("operator") as client:
        provider_task = client.get(f"/tasks/{task_id}").raise_for_status().json()
    hwm = {name: vm_hwm_mb(pid) for name, pid in roots.items()}
    return {
        "protocol": protocol,
        "task_id": task_id,
        "task_seconds": task_seconds,
        "requester": final,
        "provider": provider_task,
        "items": items,
        # a node resets its high-water mark when a task's resource window opens (node/usage.py),
        # unless another task's is open: one this task left unchanged is reported as None, and
        # the sampled tree peak is this task's measure
        "node_hwm_mb": {name: mb if mb != before[name] else None for name, mb in hwm.items()},
        "tree_peak_mb": {name: b / 2**20 for name, b in sampler.peak_bytes.items()},
        "tree_processes": sampler.max_processes,
        "cpu_seconds": sampler.cpu_seconds,
        "read_cpu_seconds": reading.cpu_seconds,
    }


def result_items(operator: Any, task_id: int) -> list[str]:
    """The requester's output: the items of GET /result, or of the result file when large."""
    from privledger.node import results

    answer = operator.get(f"/tasks/{task_id}/result")
    if answer.status_code == 409:  # over the API's list limit: the result file (JSON Lines)
        content = operator.get(f"/tasks/{task_id}/result/file").raise_for_status().content
        return results.parse(content)
    items: list[str] = answer.raise_for_status().json()["items"]
    return items


def run_openmined(requester_phones: list[str], provider_phones: list[str]) -> dict[str, Any]:
    """OpenMined ECDH-PSI in this process: the provider is its server, the requester its client
    learning the intersection; messages go through their serialised (wire) form."""
    try:
        import private_set_intersection.python as psi
    except ImportError as exc:
        raise SystemExit(
            f"--peer openmined-psi needs the package: pip install -e '.[bench]' ({exc})"
        ) from exc
    started, cpu_started = time.perf_counter(), time.process_time()
    server = psi.server.CreateWithNewKey(True)
    client = psi.client.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(
        PEER_FPR, len(requester_phones), provider_phones, psi.DataStructure.RAW
    ).SerializeToString()
    request = client.CreateRequest(requester_phones).SerializeToString()
    response = server.ProcessRequest(psi.Request.FromString(request)).SerializeToString()
    indices = client.GetIntersection(
        psi.ServerSetup.FromString(setup), psi.Response.FromString(response)
    )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "items": {requester_phones[i] for i in indices},
        "bytes": len(setup) + len(request) + len(response),
        "version": str(psi.__version__),
    }


# --- direct mode: the protocol alone between two forked processes ------------------------------


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ``clear_refs`` 5); False if not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _direct_party(
    role: str, protocol: str, n: int, seed: int, sock: Any, results: Any, side: str, ready: Any
) -> None:
    """One party, spawned: builds its own input list (as a node reads its dataset), then runs."""
    import gc

    from privledger.protocols.psi import ecdh, kkrt, rr22
    from privledger.protocols.psi.buckets import SocketChannel

    requester, provider = make_sets(n, seed)
    items = [phone.encode() for phone in (requester if role == "requester" else provider)]
    del requester, provider
    gc.collect()
    input_mb = vm_hwm_mb(os.getpid()) if not _reset_peak_rss() else None
    before_mb = _rss_mb()
    run_psi = {"ecdh": ecdh.run_psi, "kkrt": kkrt.run_psi, "rr22": rr22.run_psi}[protocol]
    channel = SocketChannel(side, sock)  # type: ignore[arg-type]
    ready.wait()  # both inputs built: start together
    started, cpu = time.perf_counter(), time.process_time()
    result = run_psi(channel, items, role=role, timeout=3600)  # type: ignore[arg-type]
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    peak = vm_hwm_mb(os.getpid())
    report = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak,
        "input_rss_mb": before_mb,
        "peak_includes_input_generation": input_mb is not None,
        "bytes_sent": channel.bytes_sent,
        "items": [item.decode() for item in result.intersection],
    }
    results.put((role, report))
    channel.close()


def _rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_direct(
    args: argparse.Namespace, requester: list[str], provider: list[str], expected: set[str]
) -> int:
    """Both parties as spawned processes over a socketpair; each builds its own input list."""
    import multiprocessing
    import socket

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    left, right = socket.socketpair()
    sides = {"requester": ("a", left), "provider": ("b", right)}
    ready = context.Barrier(2)
    parties = [
        context.Process(
            target=_direct_party,
            args=(role, args.protocol, args.n, args.seed, sock, results, side, ready),
        )
        for role, (side, sock) in sides.items()
    ]
    for party in parties:
        party.start()
    reports: dict[str, dict[str, Any]] = {}
    for _ in parties:
        role, report = results.get(timeout=args.timeout)
        reports[role] = report
    for party in parties:
        party.join()
    got = reports["requester"]["items"]
    if len(got) != len(set(got)) or set(got) != expected:
        print(f"PSI result is wrong: {len(got)} items, expected {len(expected)}", file=sys.stderr)
        return 1
    peaks = {role: r["peak_rss_mb"] for role, r in reports.items()}
    result: dict[str, Any] = {
        "bench": "psi",
        "params": {
            "n": args.n,
            "overlap": 0.5,
            "protocol": args.protocol,
            "seed": args.seed,
            "cpus": os.cpu_count(),
            "transport": "direct: two spawned processes, socketpair, no node, no encryption",
            "rss_source": "VmHWM of each party during run_psi (reset after building its input "
            "list, which stays in memory and is included, as in a node)",
        },
        "protocol": args.protocol,
        "n": args.n,
        "seconds": round(reports["requester"]["seconds"], 4),
        "provider_seconds": round(reports["provider"]["seconds"], 4),
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in reports.values()), 2),
        "party_cpu_seconds": {role: round(r["cpu_seconds"], 2) for role, r in reports.items()},
        "bytes_sent": sum(r["bytes_sent"] for r in reports.values()),
        "intersection": len(got),
        "peak_rss_mb": round(max(p or 0.0 for p in peaks.values()), 1),
        "party_peak_rss_mb": {role: round(p or 0.0, 1) for role, p in peaks.items()},
        "party_input_rss_mb": {
            role: round(r["input_rss_mb"] or 0.0, 1) for role, r in reports.items()
        },
    }
    if "openmined-psi" in args.peers:
        peer = run_openmined(requester, provider)
        if peer["items"] != expected:
            print("openmined-psi intersection is wrong", file=sys.stderr)
            return 1
        result["params"].update(peer="openmined-psi", peer_version=peer["version"])
        result["peer_seconds"] = round(peer["seconds"], 4)
        result["peer_cpu_seconds"] = round(peer["cpu_seconds"], 2)
        result["ratio"] = round(peer["seconds"] / result["seconds"], 2)
        result["cpu_ratio"] = round(peer["cpu_seconds"] / result["cpu_seconds"], 2)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


# --- bucketed mode: two OS processes, files of N rows -------------------------------------------

_MODULUS = 10**10  # rows map to 10-digit numbers by i -> (A i + C) mod 10^10, a bijection
_A, _C = 7_394_820_111, 1_234_567_891
_LINE = 14  # "+86" + 10 digits + "\n"
BENCH_PARTITION_KEY = bytes(16)  # public, as the protocol allows


def _phone_lines(first: int, last: int) -> bytes:
    """CSV lines for rows ``first .. last - 1`` (vectorised)."""
    rows = np.arange(first, last, dtype=np.int64)
    values = (rows * _A + _C) % _MODULUS
    out = np.empty((len(rows), _LINE), dtype=np.uint8)
    out[:, :3] = np.frombuffer(b"+86", dtype=np.uint8)
    powers = 10 ** np.arange(9, -1, -1, dtype=np.int64)
    out[:, 3:13] = (values[:, None] // powers[None, :]) % 10 + 48
    out[:, 13] = 10
    return out.tobytes()


def write_rows(path: Path, first: int, last: int, chunk: int = 1 << 20) -> None:
    """A CSV with header ``phone`` and rows ``first .. last - 1``, written chunk by chunk."""
    with path.open("wb") as handle:
        handle.write(b"phone\n")
        for lo in range(first, last, chunk):
            handle.write(_phone_lines(lo, min(lo + chunk, last)))


def check_output(path: Path, first: int, last: int, chunk_lines: int = 1 << 20) -> int:
    """Count the output's items (JSON Lines: ``"+86dddddddddd"`` and a line feed each), checking
    that each is a distinct row in ``first .. last - 1``."""
    inverse = pow(_A, -1, _MODULUS)
    seen = np.zeros(last - first, dtype=np.bool_)
    count = 0
    powers = 10 ** np.arange(9, -1, -1, dtype=np.int64)
    width = _LINE + 2  # the item in quotes
    with path.open("rb") as handle:
        while block := handle.read(chunk_lines * width):
            if len(block) % width:
                raise SystemExit("output lines are not phone numbers of the generated width")
            lines = np.frombuffer(block, dtype=np.uint8).reshape(-1, width)
            framing = np.frombuffer(b'"+86', np.uint8), np.frombuffer(b'"\n', np.uint8)
            if np.any(lines[:, :4] != framing[0]) or np.any(lines[:, 14:] != framing[1]):
                raise SystemExit("output holds a line that was not generated")
            values = ((lines[:, 4:14].astype(np.int64) - 48) * powers).sum(axis=1)
            shifted = (values - _C) % _MODULUS  # times the inverse, in two halves (< 2^63)
            high, low = divmod(inverse, 10**5)
            rows = ((shifted * high % _MODULUS) * 10**5 + shifted * low) % _MODULUS
            if np.any((rows < first) | (rows >= last)):
                raise SystemExit("output holds a row that is not shared")
            if np.any(seen[rows - first]) or len(np.unique(rows)) != len(rows):
                raise SystemExit("output holds a row twice")
            seen[rows - first] = True
            count += len(rows)
    return count


def _party(
    role: str,
    source: str,
    out: str,
    port: int | None,
    options: dict[str, Any],
    ray_address: str | None,
    results: Any,
) -> None:
    """One party in its own process: connect, run, report (peak RSS included). The buckets run
    on the Ray cluster at ``ray_address``, else on a local pool of ``workers`` processes."""
    import socket
    from dataclasses import asdict

    from privledger.node.compute import LocalPool, MeasuredExecutor, RayExecutor
    from privledger.protocols.psi.buckets import SocketChannel, process_pool, run_bucketed_psi

    executor: MeasuredExecutor = (
        RayExecutor(ray_address, options["workers"])
        if ray_address is not None
        else LocalPool(process_pool(options["workers"]))
    )
    if port is None:  # the provider listens on a free loopback port and reports it
        listener = socket.create_server(("127.0.0.1", 0))
        results.put(("port", listener.getsockname()[1]))
        sock, _ = listener.accept()
        listener.close()
        side = "b"
    else:
        sock = socket.create_connection(("127.0.0.1", port))
        side = "a"
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    channel = SocketChannel(side, sock)  # type: ignore[arg-type]
    started_cpu = time.process_time()
    with executor:
        try:
            result = run_bucketed_psi(
                channel,
                role,  # type: ignore[arg-type]
                Path(source),
                "phone",
                Path(out),
                executor=executor,
                **options,
            )
        except Exception as exc:
            results.put((role, {"error": f"{type(exc).__name__}: {exc}"}))
            raise
        finally:
            channel.close()
        peaks = [asdict(peak) for peak in executor.worker_peaks()]
    own = resource.getrusage(resource.RUSAGE_SELF)
    results.put(
        (
            role,
            {
                "seconds": result.seconds,
                "partition_seconds": result.partition_seconds,
                "matched": result.matched,
                "rows": result.rows,
                "distinct": result.distinct,
                "bucket_size": result.bucket_size,
                "bytes_sent": result.bytes_sent,
                "sha256": result.output_sha256,
                "main_rss_mb": own.ru_maxrss / 1024,
                "main_cpu_seconds": time.process_time() - started_cpu,
                "worker_peaks": peaks,
            },
        )
    )


def _run_parties(args: argparse.Namespace, base: Path, ray_address: str | None) -> dict[str, Any]:
    """Both parties, spawned, on the generated files in ``base``, their buckets on the Ray
    cluster at ``ray_address`` or on local pools; their measurements once the requester's
    output is checked (SystemExit if it is wrong)."""
    import multiprocessing
    from multiprocessing.process import BaseProcess

    engine = "ray" if ray_address is not None else "process"

    rows, shared = args.rows, int(args.rows * args.overlap)
    options = {
        "buckets": args.buckets,
        "workers": args.workers,
        "reveal_to_provider": args.reveal,
        "timeout": args.timeout,
        "partition_key": BENCH_PARTITION_KEY,
        "work_dir": base,
    }
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    outputs = {role: base / f"{engine}-{role}.out" for role in ("requester", "provider")}
    started = time.perf_counter()

    def start(role: str, port: int | None) -> BaseProcess:
        source, output = str(base / f"{role}.csv"), str(outputs[role])
        party = context.Process(
            target=_party, args=(role, source, output, port, options, ray_address, results)
        )
        party.start()
        return party

    provider = start("provider", None)
    tag, port = results.get(timeout=120)
    assert tag == "port"
    requester = start("requester", port)
    reports: dict[str, dict[str, Any]] = {}
    roots = {"requester": requester.pid or 0, "provider": provider.pid or 0}
    with TreeSampler(roots, interval_s=1.0) as sampler:
        while len(reports) < 2:
            role, report = results.get(timeout=args.timeout)
            reports[role] = report
            if "error" in report:
                requester.kill()
                provider.kill()
                raise SystemExit(f"{engine}: {role} failed: {report['error']}")
    wall = time.perf_counter() - started
    requester.join()
    provider.join()
    found = check_output(outputs["requester"], rows - shared, rows)
    mine = reports["requester"]
    if found != shared or mine["matched"] != shared:
        raise SystemExit(
            f"{engine}: bucketed PSI result is wrong: {found} rows in the output, reported "
            f"{mine['matched']}, expected {shared}"
        )
    if args.reveal and reports["provider"]["sha256"] != mine["sha256"]:
        raise SystemExit(f"{engine}: the provider's output differs from the requester's")
    for path in outputs.values():
        path.unlink(missing_ok=True)
    party_mb = {
        role: max(report["main_rss_mb"], sampler.peak_bytes[role] / 2**20)
        for role, report in reports.items()
    }
    worker_mb = {
        role: [
            {**peak, "peak_rss_mb": round(peak["peak_rss_mb"], 1)}
            for peak in report["worker_peaks"]
        ]
        for role, report in reports.items()
    }
    return {
        "engine": engine,
        "seconds": round(wall, 2),
        "requester_seconds": round(mine["seconds"], 2),
        "provider_seconds": round(reports["provider"]["seconds"], 2),
        "partition_seconds": round(mine["partition_seconds"], 2),
        "intersection": found,
        "sha256": mine["sha256"],
        "bucket_size": mine["bucket_size"],
        "bytes_sent": mine["bytes_sent"] + reports["provider"]["bytes_sent"],
        "peak_rss_mb": round(max(party_mb.values()), 1),
        "party_peak_rss_mb": {role: round(mb, 1) for role, mb in party_mb.items()},
        "party_main_rss_mb": {role: round(r["main_rss_mb"], 1) for role, r in reports.items()},
        "party_processes": sampler.max_processes,
        "worker_peak_rss_mb": worker_mb,
        "max_worker_peak_rss_mb": max(
            (peak["peak_rss_mb"] for peaks in worker_mb.values() for peak in peaks), default=0.0
        ),
        "cpu_seconds": round(sum(sampler.cpu_seconds.values()), 1),
    }


def run_bucketed(args: argparse.Namespace) -> int:
    rows, buckets = args.rows, args.buckets
    shared = int(rows * args.overlap)
    base = Path(tempfile.mkdtemp(prefix="privledger-bench-buckets-", dir=args.tmp))
    try:
        generated = time.perf_counter()
        write_rows(base / "requester.csv", 0, rows)
        write_rows(base / "provider.csv", rows - shared, 2 * rows - shared)
        generate_seconds = time.perf_counter() - generated
        measured = _run_parties(args, base, args.ray_address if args.engine == "ray" else None)
        peer = _run_parties(args, base, None) if args.peers == ["pool"] else None
    except SystemExit as failed:
        print(failed, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if peer is not None and peer["sha256"] != measured["sha256"]:
        print("the Ray cluster's output differs from the local pool's", file=sys.stderr)
        return 1
    result: dict[str, Any] = {
        "bench": "psi",
        "params": {
            "mode": "buckets",
            "protocol": "kkrt-bucketed",
            "rows": rows,
            "overlap": args.overlap,
            "buckets": buckets,
            "workers": args.workers,
            "engine": args.engine,
            "reveal_to_provider": args.reveal,
            "cpus": os.cpu_count(),
            "transport": "two OS processes, plain TCP loopback (no encryption), one channel",
            "input": "CSV, 14-byte phone lines, generated streaming",
            "rss_source": "per party max(main ru_maxrss, sampled summed RSS of its process tree; "
            "Ray's workers are not in it); worker_peak_rss_mb: each worker's own ru_maxrss",
            "cpu_source": "utime+stime of both party process trees (sampled, 1 s; with Ray, "
            "without the cluster's workers)",
        },
        "protocol": "kkrt-bucketed",
        "rows": rows,
        "buckets": buckets,
        **{key: value for key, value in measured.items() if key not in ("engine", "sha256")},
        "generate_seconds": round(generate_seconds, 2),
    }
    if peer is not None:
        result["params"].update(peer="pool", ray_address=args.ray_address)
        result["peer_seconds"] = peer["seconds"]
        result["ratio"] = round(measured["seconds"] / peer["seconds"], 3)
        result["requester_ratio"] = round(
            measured["requester_seconds"] / peer["requester_seconds"], 3
        )
        result["peer"] = {key: value for key, value in peer.items() if key != "sha256"}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=65_536, help="rows per side (50%% overlap)")
    parser.add_argument("--protocol", default="ecdh", help="PSI protocol: " + ", ".join(PROTOCOLS))
    parser.add_argument(
        "--peer",
        dest="peers",
        action="append",
        default=[],
        help="also run a peer (repeatable): " + ", ".join(PEERS),
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic sets")
    parser.add_argument("--timeout", type=float, default=1_800, help="seconds to wait for settle")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--transport",
        choices=("nodes", "direct"),
        default="nodes",
        help="nodes: two node processes, the task through the ledger; direct: the protocol alone "
        "between two spawned processes over a socketpair (no node, no encryption)",
    )
    parser.add_argument("--buckets", type=int, default=0, help="bucketed KKRT over files (B)")
    parser.add_argument("--rows", type=int, default=10**6, help="rows per side with --buckets")
    parser.add_argument("--overlap", type=float, default=0.5, help="shared fraction (--buckets)")
    parser.add_argument("--workers", type=int, default=2, help="pool processes per party")
    parser.add_argument("--reveal", action="store_true", help="output to both (--buckets)")
    parser.add_argument("--tmp", default=None, help="directory for the generated files")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="process",
        help="who runs the buckets (--buckets): each party's process pool, or a Ray cluster",
    )
    parser.add_argument(
        "--ray-address",
        default=os.environ.get("RAY_ADDRESS"),
        help="the Ray cluster's head, HOST:PORT (--engine ray; default $RAY_ADDRESS)",
    )
    args = parser.parse_args(argv)
    if args.buckets:
        if args.buckets < 1 or args.rows < 1 or not 0 <= args.overlap <= 1:
            print("--buckets and --rows must be positive, --overlap in [0, 1]", file=sys.stderr)
            return 2
        if args.engine == "ray" and (not args.ray_address or args.workers < 1):
            print(
                "--engine ray needs --ray-address HOST:PORT (or RAY_ADDRESS) and --workers >= 1",
                file=sys.stderr,
            )
            return 2
        if args.peers and (args.peers != list(BUCKET_PEERS) or args.engine != "ray"):
            print("with --buckets the peer is `pool`, beside --engine ray", file=sys.stderr)
            return 2
        return run_bucketed(args)
    if args.protocol not in PROTOCOLS:
        print(
            f"protocol {args.protocol!r} is not implemented; available: {', '.join(PROTOCOLS)}",
            file=sys.stderr,
        )
        return 2
    unknown = [peer for peer in args.peers if peer not in PEERS or peer == args.protocol]
    if unknown:
        print(f"unknown peer {unknown[0]!r}; available: {', '.join(PEERS)}", file=sys.stderr)
        return 2
    protocol_peers = tuple(dict.fromkeys(p for p in args.peers if p in PROTOCOLS))
    if protocol_peers and args.transport == "direct":
        print(
            "a protocol peer runs through the nodes; for the protocols alone, interleaved: "
            "privledger bench rr22_psi",
            file=sys.stderr,
        )
        return 2
    if args.n < 2:
        print("--n must be at least 2", file=sys.stderr)
        return 2

    requester_phones, provider_phones = make_sets(args.n, args.seed)
    expected = set(requester_phones) & set(provider_phones)
    if args.transport == "direct":
        return run_direct(args, requester_phones, provider_phones, expected)
    runs = run_nodes(
        requester_phones,
        provider_phones,
        (args.protocol, *protocol_peers),
        args.timeout,
        warmup=bool(protocol_peers),
    )
    measured = [_measured(run, expected, args.n) for run in runs]
    failed = [m for m in measured if isinstance(m, str)]
    if failed:
        print(failed[0], file=sys.stderr)
        return 1
    reported = [m for m in measured if not isinstance(m, str)]
    warmup = reported.pop(0) if protocol_peers else None
    result, *peer_results = reported
    params: dict[str, Any] = {
        "n": args.n,
        "overlap": 0.5,
        "protocol": args.protocol,
        "seed": args.seed,
        "cpus": os.cpu_count(),
        "transport": "two node processes, encrypted HTTP channel, loopback",
        "chain": "anvil (fresh local consortium)",
        "rss_source": "per party max(node VmHWM if this task raised it, sampled summed RSS of "
        "node + worker processes)",
        "cpu_source": "utime+stime(+reaped children) of both node process trees, submit->settled; "
        "read_cpu_seconds: the same while this benchmark reads the output (GET /result) after",
    }
    if warmup is not None:  # the protocols compared on nodes that each ran one task before
        params["warmup"] = {"protocol": args.protocol, "seconds": warmup["seconds"]}
    result = {"bench": "psi", "params": params, **result}
    peers: dict[str, dict[str, Any]] = {}
    for peer_result in peer_results:  # the protocol peers, in the same consortium
        peer_result["ratio"] = round(peer_result["seconds"] / result["seconds"], 4)
        peers[peer_result.pop("protocol")] = peer_result
    if "openmined-psi" in args.peers:
        peer = run_openmined(requester_phones, provider_phones)
        if peer["items"] != expected:
            print(
                f"openmined-psi intersection is wrong: {len(peer['items'])} items, expected "
                f"{len(expected)}",
                file=sys.stderr,
            )
            return 1
        peers["openmined-psi"] = {
            "version": peer["version"],
            "mode": "in-process",
            "data_structure": "RAW",
            "fpr": PEER_FPR,
            "seconds": round(peer["seconds"], 4),
            "cpu_seconds": round(peer["cpu_seconds"], 2),
            "bytes_sent": peer["bytes"],
            "ratio": round(peer["seconds"] / result["seconds"], 4),
        }
    if peers:  # the first peer named also as peer_seconds and ratio (peer / this protocol)
        first = next(peer for peer in dict.fromkeys(args.peers) if peer in peers)
        params["peer"] = first
        result["peer_seconds"] = peers[first]["seconds"]
        result["ratio"] = peers[first]["ratio"]
        result["peers"] = peers
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def _measured(run: dict[str, Any], expected: set[str], n: int) -> dict[str, Any] | str:
    """One task's measurements, or why they cannot be reported (a wrong output, no time)."""
    got = set(run["items"])
    if len(run["items"]) != len(got) or got != expected:
        return (
            f"{run['protocol']}: PSI result is wrong: {len(run['items'])} items ({len(got)} "
            f"distinct), expected {len(expected)}; missing {len(expected - got)}, extra "
            f"{len(got - expected)}"
        )
    seconds = run["requester"]["localProtocolSeconds"]
    provider_seconds = run["provider"]["localProtocolSeconds"]
    sent = [run["requester"]["localBytesSent"], run["provider"]["localBytesSent"]]
    if seconds is None or provider_seconds is None or None in sent:
        return f"{run['protocol']}: a node did not record its protocol time or bytes sent"
    # per party: the larger of the node's own high-water mark and the sampled peak of its whole
    # process tree (node + PSI worker pool, which exits with the task)
    party_mb = {
        name: max(tree_mb, run["node_hwm_mb"][name] or 0.0)
        for name, tree_mb in run["tree_peak_mb"].items()
    }
    return {
        "protocol": run["protocol"],
        "n": n,
        "seconds": round(seconds, 4),
        "task_seconds": round(run["task_seconds"], 4),
        "provider_seconds": round(provider_seconds, 4),
        "bytes_sent": sum(sent),
        "bits_per_item": round(8 * sum(sent) / n, 1),
        "intersection": len(got),
        "peak_rss_mb": round(max(party_mb.values()), 1),
        "party_peak_rss_mb": {name: round(mb, 1) for name, mb in party_mb.items()},
        "party_tree_peak_rss_mb": {n: round(mb, 1) for n, mb in run["tree_peak_mb"].items()},
        "party_processes": run["tree_processes"],
        "cpu_seconds": round(sum(run["cpu_seconds"].values()), 2),
        "party_cpu_seconds": {name: round(cpu, 2) for name, cpu in run["cpu_seconds"].items()},
        "read_cpu_seconds": round(sum(run["read_cpu_seconds"].values()), 2),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
