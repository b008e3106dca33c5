"""Task submissions per second through a node's REST API to the chain (see shared BENCHMARKS.md).

A fresh local consortium; the telecom's operator submits PSI tasks against bank-a's dataset with
no grant, so every task waits for approval and the workers stay idle: what is timed is the API,
the on-chain submission (pre-flight, signing, mining, receipt) and the response. Every submitted
task is checked on chain before the numbers are printed, and so are the submitting account's nonces
(one transaction per submission, none missing, none twice).

Where the time goes is printed too: the CPU milliseconds per submission of the submitting node's
processes, of the other nodes (each indexes every block) and of the chain, read from /proc. A node
of one Python process is bound at about 1000/node_cpu_ms submissions per second even on an idle
machine; ``--workers N [N ...]`` measures the node serving its API from N processes instead, for
each N in the same run, its store in a database of a throwaway PostgreSQL server (started as the
tests start theirs, tests/pg_server.py): one object per N, the node restarted on a fresh database
each time. Nonces are checked per account across all of the node's processes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from sqlmodel import Session
from web3 import Web3
from web3.types import TxData

from privledger.api.deps import issue_token
from privledger.config import Settings
from privledger.demo import DEMO_ORGS, NodeProcess, consortium, synthetic_customers, wait_healthy
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import free_port
from privledger.evm.artifacts import load_artifacts
from privledger.evm.contracts import TaskStatus
from privledger.evm.deploy import load_deployment
from privledger.evm.ledger import Ledger
from privledger.sdk import NodeClient
from privledger.store.db import make_engine

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300.0  # a node of several processes starts each of them, on a loaded machine too


def _register(url: str, token: str, path: Path, name: str) -> str:
    with NodeClient(url, token) as owner:
        return owner.register_file(path, name, level=1, unit_price=0).dataset_id


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="task submissions")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent API clients")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        help="API processes of the node, on PostgreSQL (one measurement per value)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="privledger-bench-api-") as tmp:
        base = Path(tmp)
        settings = Settings(var_path=base / "var", deployments_path=base / "deployments")
        with consortium(settings, free_port()) as (handle, info, nodes):
            synthetic_customers(
                base / "data",
                {"telecom": 50, "bank-a": 50, "bank-b": 10},
                {"bank-a": 5, "bank-b": 1},
            )
            bank = nodes["bank-a"]
            theirs = _register(bank.url, bank.tokens["data_owner"], base / "data/bank-a.csv", "b")
            bench = _Bench(args, info, settings, nodes, handle.process.pid, theirs, base)
            if args.workers is None:
                bench.report(bench.measure(), workers=1, store="sqlite")
            else:
                sys.path.insert(0, str(ROOT))  # the tests' throwaway PostgreSQL server
                pg_server = importlib.import_module("tests.pg_server")
                with pg_server.start_postgres() as server:
                    for index, workers in enumerate(args.workers):
                        url = server.create_database(f"bench_api_{index}_{workers}")
                        bench.restart_on(url, workers)
                        bench.report(bench.measure(), workers=workers, store="postgres")
    return 0


class _Bench:
    """The consortium under measurement and how one measurement goes."""

    def __init__(
        self,
        args: argparse.Namespace,
        info: dict[str, Any],
        settings: Settings,
        nodes: dict[str, NodeProcess],
        chain_pid: int,
        theirs: str,
        base: Path,
    ) -> None:
        self.args, self.info, self.settings, self.nodes = args, info, settings, nodes
        self.chain_pid, self.theirs, self.base = chain_pid, theirs, base
        self.telecom = nodes["telecom"]
        self.ledger = _admin_ledger(info, settings)
        self.operator = _signer(self.ledger, "telecom")

    def restart_on(self, database_url: str, workers: int) -> None:
        """Restart the telecom node on a fresh PostgreSQL database with ``workers`` API
        processes (and a peer port of its own), with demo tokens issued in that database."""
        telecom = self.telecom
        telecom.stop()
        engine = make_engine(database_url)
        with Session(engine) as session:
            telecom.tokens = {
                role: issue_token(
                    session, user_name=f"telecom-{role}", address=self.operator, role=role
                )
                for role in ("data_owner", "operator")
            }
        engine.dispose()
        telecom.env = {
            **telecom.env,
            "PRIVLEDGER_DATABASE_URL": database_url,
            "PRIVLEDGER_API_WORKERS": str(workers),
            "PRIVLEDGER_PEER_PORT": str(free_port()),
        }
        telecom.restart()
        try:
            wait_healthy(telecom, timeout_s=START_TIMEOUT_S)
        except RuntimeError as exc:
            log = telecom.log_path.read_text(errors="replace").splitlines()[-30:]
            raise SystemExit(f"{exc}; its log ends:\n" + "\n".join(log)) from exc

    def measure(self) -> dict[str, Any]:
        args, telecom, ledger, operator = self.args, self.telecom, self.ledger, self.operator
        path = self.base / "data/telecom.csv"
        mine = _register(telecom.url, telecom.tokens["data_owner"], path, "t")
        body = {
            "inputs": [
                {"dataset": mine, "column": "phone"},
                {"dataset": self.theirs, "column": "phone"},
            ]
        }
        client = httpx.Client(
            base_url=f"{telecom.url}/api/v1",
            headers={"Authorization": f"Bearer {telecom.tokens['operator']}"},
            timeout=60,
            limits=httpx.Limits(max_connections=args.concurrency),
        )

        def submit(_: int) -> tuple[float, int]:
            start = time.perf_counter()
            response = client.post("/tasks", json=body)
            elapsed = time.perf_counter() - start
            if response.status_code != 201:
                raise SystemExit(f"submission failed: {response.status_code} {response.text}")
            return elapsed, int(response.json()["taskId"])

        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(submit, range(args.concurrency)))  # warm up connections and caches
        first_block = ledger.client.w3.eth.block_number + 1
        first_nonce = ledger.client.w3.eth.get_transaction_count(operator, "pending")
        node_pids = _with_children(telecom.process.pid)
        others = [node.process.pid for name, node in self.nodes.items() if name != "telecom"]
        cpu_before = _cpu_seconds(node_pids), _cpu_seconds(others)
        chain_before = _cpu_seconds([self.chain_pid])
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = list(pool.map(submit, range(args.n)))
        seconds = time.perf_counter() - started
        node_cpu = _cpu_seconds(node_pids) - cpu_before[0]
        others_cpu = _cpu_seconds(others) - cpu_before[1]
        chain_cpu = _cpu_seconds([self.chain_pid]) - chain_before
        client.close()

        task_ids = {task_id for _, task_id in results}
        if len(task_ids) != args.n:
            raise SystemExit("two submissions returned the same task id")
        for task_id in task_ids:
            if ledger.tasks.get_task(task_id).status is not TaskStatus.SUBMITTED:
                raise SystemExit(f"task {task_id} is not waiting for approval on chain")
        # the node also signs with this account (audit-log anchors), from whichever of its
        # processes: all of its transactions must be gapless and unique, and exactly one per
        # submission must be a submitTask
        sent = _sent(ledger, operator, first_block)
        nonces = sorted(nonce for nonce, _ in sent)
        gapless = nonces == list(range(nonces[0], nonces[0] + len(nonces))) if nonces else False
        if not gapless or nonces[0] > first_nonce:
            raise SystemExit(f"the operator's nonces are not gapless and unique: {nonces}")
        selector = ledger.tasks.contract.functions.submitTask.signature
        submitted = sum(1 for _, data in sent if data[:4] == _selector(selector))
        if submitted != args.n:
            raise SystemExit(f"{submitted} submitTask transactions for {args.n} submissions")
        latencies = sorted(elapsed for elapsed, _ in results)
        return {
            "seconds": round(seconds, 3),
            "per_s": round(args.n / seconds, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1),
            "node_cpu_ms": round(node_cpu * 1000 / args.n, 2),
            "other_nodes_cpu_ms": round(others_cpu * 1000 / args.n, 2),
            "chain_cpu_ms": round(chain_cpu * 1000 / args.n, 2),
            "node_processes": len(node_pids),
            "nonces_checked": len(nonces),
        }

    def report(self, measured: dict[str, Any], *, workers: int, store: str) -> None:
        args = self.args
        result: dict[str, Any] = {
            "bench": "api",
            "params": {
                "n": args.n,
                "concurrency": args.concurrency,
                "workers": workers,
                "store": store,
                "chain": "anvil",
            },
            "seconds": measured.pop("seconds"),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            **measured,
            "cores": os.cpu_count(),
        }
        print(json.dumps(result) if args.json else json.dumps(result, indent=2), flush=True)


def _with_children(pid: int) -> list[int]:
    """``pid`` and the processes it started, theirs too (Linux /proc; ``[pid]`` elsewhere)."""
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        found += _with_children(int(child))
    return found


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes (Linux /proc; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def _signer(ledger: Ledger, org: str) -> ChecksumAddress:
    """The account an org's demo tokens act through (its admin's development account)."""
    index = next(index for name, index, _roles, _node in DEMO_ORGS if name == org)
    address: ChecksumAddress = dev_account(index, ledger.client.chain_id).address
    return address


def _sent(ledger: Ledger, sender: str, first_block: int) -> list[tuple[int, bytes]]:
    """(nonce, call data) of the transactions ``sender`` got mined from ``first_block`` on."""
    w3 = ledger.client.w3
    found = []
    for number in range(first_block, w3.eth.block_number + 1):
        for item in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            tx = cast(TxData, item)  # full transactions, not hashes
            if tx["from"] == sender:
                found.append((int(tx["nonce"]), bytes(tx["input"])))
    return found


def _selector(signature: str) -> bytes:
    return bytes(keccak(text=signature)[:4])


def _admin_ledger(info: dict[str, Any], settings: Settings) -> Ledger:
    w3 = Web3(Web3.HTTPProvider(info["rpcUrl"]))
    deployment = load_deployment(settings.deployments_dir, w3.eth.chain_id)
    if deployment is None:
        raise SystemExit("no deployment recorded")
    return Ledger.connect_dev(w3, load_artifacts(settings.build_dir / "contracts"), deployment)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
