"""Two-party PSI between two real node processes over the real encrypted channel. Prints one JSON
object (see shared BENCHMARKS.md).

A fresh local consortium (anvil, contracts, organisations, one node process per organisation) is
started in a temporary directory. The telecom node (requester) and the bank-a node (provider) each
get a CSV of ``--n`` phone numbers, half of them shared; the bank's dataset is granted to the
telecom, the task is submitted through the telecom node's API and followed until it is settled on
chain. The intersection returned by the API is checked against the plaintext intersection before
any time is reported.

``--peer openmined-psi`` also runs OpenMined's C++ ECDH-PSI (``pip install openmined-psi``, the
``bench`` extra) in this process on the same two sets, checks its intersection and reports
``peer_seconds`` and ``ratio`` = peer_seconds / seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from privledger.config import Settings
from privledger.demo import NodeProcess, consortium
from privledger.evm.anvil import free_port

PROTOCOLS = ("ecdh", "kkrt")
PEERS = ("openmined-psi",)
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
    body = {"path": str(path), "name": name, "level": 2, "unitPrice": 10**12}
    with node.client("data_owner") as owner:
        response = owner.post("/datasets", json=body)
        if response.status_code != 201:
            raise SystemExit(f"registering {name} failed: {response.status_code} {response.text}")
        dataset_id: str = response.json()["datasetId"]
        return dataset_id


def wait_settled(node: NodeProcess, task_id: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    with node.client("operator") as client:
        while True:
            task: dict[str, Any] = client.get(f"/tasks/{task_id}").raise_for_status().json()
            if task["status"] in ("settled", "failed"):
                return task
            if node.process.poll() is not None:
                raise SystemExit(f"node {node.org} exited with code {node.process.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit(f"task {task_id} still {task['status']} after {timeout_s:.0f}s")
            time.sleep(0.05)


def run_nodes(
    requester_phones: list[str], provider_phones: list[str], protocol: str, timeout_s: float
) -> dict[str, Any]:
    """The PSI task through the node API, from dataset registration to settlement."""
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
                        "maxUses": 1,
                    },
                )
                if granted.status_code != 201:
                    raise SystemExit(f"grant failed: {granted.status_code} {granted.text}")
            body = {
                "kind": "psi",
                "protocol": protocol,
                "inputs": [
                    {"dataset": mine, "column": "phone"},
                    {"dataset": theirs, "column": "phone"},
                ],
                "feeWei": FEE_WEI,
                "deadlineS": max(3_600, int(timeout_s) + 600),
            }
            roots = {REQUESTER: requester.process.pid, PROVIDER: provider.process.pid}
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
                result = operator.get(f"/tasks/{task_id}/result").raise_for_status().json()
            with provider.client("operator") as client:
                provider_task = client.get(f"/tasks/{task_id}").raise_for_status().json()
            hwm = {name: vm_hwm_mb(pid) for name, pid in roots.items()}
    return {
        "task_id": task_id,
        "task_seconds": task_seconds,
        "requester": final,
        "provider": provider_task,
        "items": result["items"],
        "node_hwm_mb": hwm,
        "tree_peak_mb": {name: b / 2**20 for name, b in sampler.peak_bytes.items()},
        "tree_processes": sampler.max_processes,
        "cpu_seconds": sampler.cpu_seconds,
    }


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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=65_536, help="rows per side (50%% overlap)")
    parser.add_argument("--protocol", default="ecdh", help="PSI protocol: " + ", ".join(PROTOCOLS))
    parser.add_argument("--peer", default=None, help="also run a peer: " + ", ".join(PEERS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic sets")
    parser.add_argument("--timeout", type=float, default=1_800, help="seconds to wait for settle")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.protocol not in PROTOCOLS:
        print(
            f"protocol {args.protocol!r} is not implemented; available: {', '.join(PROTOCOLS)}",
            file=sys.stderr,
        )
        return 2
    if args.peer is not None and args.peer not in PEERS:
        print(f"unknown peer {args.peer!r}; available: {', '.join(PEERS)}", file=sys.stderr)
        return 2
    if args.n < 2:
        print("--n must be at least 2", file=sys.stderr)
        return 2

    requester_phones, provider_phones = make_sets(args.n, args.seed)
    expected = set(requester_phones) & set(provider_phones)
    run = run_nodes(requester_phones, provider_phones, args.protocol, args.timeout)
    got = set(run["items"])
    if len(run["items"]) != len(got) or got != expected:
        print(
            f"PSI result is wrong: {len(run['items'])} items ({len(got)} distinct), expected "
            f"{len(expected)}; missing {len(expected - got)}, extra {len(got - expected)}",
            file=sys.stderr,
        )
        return 1
    seconds = run["requester"]["localProtocolSeconds"]
    provider_seconds = run["provider"]["localProtocolSeconds"]
    sent = [run["requester"]["localBytesSent"], run["provider"]["localBytesSent"]]
    if seconds is None or provider_seconds is None or None in sent:
        print("a node did not record its protocol time or bytes sent", file=sys.stderr)
        return 1
    # per party: the larger of the node's own high-water mark and the sampled peak of its whole
    # process tree (node + PSI worker pool, which exits with the task)
    party_mb: dict[str, float] = {}
    for name, tree_mb in run["tree_peak_mb"].items():
        hwm = run["node_hwm_mb"][name]
        party_mb[name] = max(tree_mb, hwm or 0.0)
    measured = any(mb > 0 for mb in party_mb.values())
    peak_rss_mb = (
        max(party_mb.values())
        if measured
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )

    params: dict[str, Any] = {
        "n": args.n,
        "overlap": 0.5,
        "protocol": args.protocol,
        "seed": args.seed,
        "cpus": os.cpu_count(),
        "transport": "two node processes, encrypted HTTP channel, loopback",
        "chain": "anvil (fresh local consortium)",
        "rss_source": (
            "per party max(node VmHWM, sampled summed RSS of node + worker processes)"
            if measured
            else "ru_maxrss of bench process"
        ),
        "cpu_source": "utime+stime(+reaped children) of both node process trees, submit->settled",
    }
    result: dict[str, Any] = {
        "bench": "psi",
        "params": params,
        "protocol": args.protocol,
        "n": args.n,
        "seconds": round(seconds, 4),
        "task_seconds": round(run["task_seconds"], 4),
        "provider_seconds": round(provider_seconds, 4),
        "bytes_sent": sum(sent),
        "intersection": len(got),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "party_peak_rss_mb": {name: round(mb, 1) for name, mb in party_mb.items()},
        "party_tree_peak_rss_mb": {n: round(mb, 1) for n, mb in run["tree_peak_mb"].items()},
        "party_processes": run["tree_processes"],
        "cpu_seconds": round(sum(run["cpu_seconds"].values()), 2),
    }
    if args.peer == "openmined-psi":
        peer = run_openmined(requester_phones, provider_phones)
        if peer["items"] != expected:
            print(
                f"openmined-psi intersection is wrong: {len(peer['items'])} items, expected "
                f"{len(expected)}",
                file=sys.stderr,
            )
            return 1
        params.update(
            peer="openmined-psi",
            peer_version=peer["version"],
            peer_mode="in-process",
            peer_data_structure="RAW",
            peer_fpr=PEER_FPR,
        )
        result["peer_seconds"] = round(peer["seconds"], 4)
        result["peer_cpu_seconds"] = round(peer["cpu_seconds"], 2)
        result["peer_bytes"] = peer["bytes"]
        result["ratio"] = round(peer["seconds"] / seconds, 4)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
