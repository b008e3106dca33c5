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
each time, measured once it has indexed the chain, and on the chain as the first of them found it
(an anvil snapshot). Nonces are checked per account across all of the node's processes. Then the
CPU of PostgreSQL's processes and of the bench's own clients is printed too, and the node's per
process (the primary first): how evenly the kernel spread the clients' connections.

By default anvil mines one block per transaction, as fast as it can: the consortium's CPU is
then the limit. ``--block-time S`` mines a block every S seconds instead, as Besu does: each
submission then waits for its block, in one of its process's
:data:`privledger.api.threads.CHAIN_WAIT_THREADS` meanwhile, so the submissions in flight bound
the rate as much as the CPU (give ``--concurrency`` enough clients to fill them).
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
from sqlmodel import Session, func, select
from web3 import Web3
from web3.types import RPCEndpoint, TxData

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
from privledger.store.models import IndexerCursor

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
    parser.add_argument(
        "--block-time",
        type=float,
        help="seconds between the chain's blocks (default: a block per transaction)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="privledger-bench-api-") as tmp:
        base = Path(tmp)
        settings = Settings(var_path=base / "var", deployments_path=base / "deployments")
        interval = () if args.block_time is None else ("--block-time", str(args.block_time))
        with consortium(settings, free_port(), chain_options=interval) as (handle, info, nodes):
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
                        bench.restart_on(url, workers, server.process.pid)
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
        self.database_pid: int | None = None  # the PostgreSQL server's, when there is one
        self._snapshot: str | None = None  # the chain as every measurement on PostgreSQL finds it

    def restart_on(self, database_url: str, workers: int, database_pid: int) -> None:
        """Restart the telecom node on a fresh PostgreSQL database with ``workers`` API
        processes (and a peer port of its own), with demo tokens issued in that database, on
        the chain as the first such measurement found it: anvil's work per block grows with
        the contracts' storage (it hashes the state afresh for each block), so the chain of a
        later measurement cost it up to four times as much per submission."""
        telecom = self.telecom
        self.database_pid = database_pid
        telecom.stop()
        rpc = self.ledger.client.w3.provider
        back = (
            self._snapshot is None
            or rpc.make_request(RPCEndpoint("evm_revert"), [self._snapshot])["result"]
        )
        if not back:
            raise SystemExit("the chain did not go back to the first measurement's state")
        self._snapshot = rpc.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
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
        self._wait_indexed(database_url)

    def _wait_indexed(self, database_url: str) -> None:
        """Wait until the restarted node has indexed the chain (its fresh database): otherwise
        it reads the whole chain while it is measured, at a cost that grows with each run."""
        head = self.ledger.client.w3.eth.block_number
        engine = make_engine(database_url)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                with Session(engine) as session:
                    cursor = session.exec(select(func.max(IndexerCursor.next_block))).one()
                if cursor is not None and cursor > head:
                    return
                if time.monotonic() > deadline:
                    raise SystemExit(f"the node indexed up to block {cursor} of {head}")
                time.sleep(0.5)
        finally:
            engine.dispose()

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
        database = [] if self.database_pid is None else [self.database_pid]
        groups = {"node": node_pids, "others": others, "chain": [self.chain_pid], "db": database}

        def cpu(name: str) -> list[float]:  # the node's processes each, the others' trees
            measure = _cpu_seconds if name == "node" else _tree_cpu_seconds
            return [measure(pid) for pid in groups[name]]

        before = {name: cpu(name) for name in groups}
        client_before, load_before = _own_cpu_seconds(), os.getloadavg()[0]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = list(pool.map(submit, range(args.n)))
        seconds = time.perf_counter() - started
        client_cpu = _own_cpu_seconds() - client_before
        spent = {
            name: [now - was for now, was in zip(cpu(name), before[name], strict=True)]
            for name in groups
        }
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

        def per_submission(cpu_seconds: float) -> float:
            return round(cpu_seconds * 1000 / int(args.n), 2)

        return {
            "seconds": round(seconds, 3),
            "per_s": round(args.n / seconds, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1),
            "node_cpu_ms": per_submission(sum(spent["node"])),
            # each process's share (the primary first): are the connections spread over them?
            "node_cpu_ms_by_process": [per_submission(cpu) for cpu in spent["node"]],
            "other_nodes_cpu_ms": per_submission(sum(spent["others"])),
            "chain_cpu_ms": per_submission(sum(spent["chain"])),
            "postgres_cpu_ms": per_submission(sum(spent["db"])) if database else None,
            "client_cpu_ms": per_submission(client_cpu),
            "load_average": round(load_before, 2),  # the machine's, before the measurement
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
                "block_time": args.block_time,
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and of its children that exited (Linux /proc; 0
    elsewhere or when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, and the same of the children it waited for (fields 14-17 of stat)
    return sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float:
    """:func:`_cpu_seconds` of ``pid`` and every process under it (a database server's
    connections come and go: those gone are in their parent's figure)."""
    return sum(_cpu_seconds(each) for each in _with_children(pid))


def _own_cpu_seconds() -> float:
    """This process's user + system CPU seconds (all its threads: the clients)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
