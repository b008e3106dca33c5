"""A throwaway two-node Ray cluster for the ``ray`` tests, started as a user starts one: ``ray
start --head`` and a second node process, ``ray start --address HEAD``, both on this machine.
Each node has one CPU, a small object store, its own directory under a fresh temporary
directory and free ports (Ray's fixed defaults -- 6379, 8265, 10001, 52365 -- would collide
with any other cluster on the host); no dashboard, no usage stats. Both run with ``--block`` in a
process group of their own, which is killed at the end (``ray stop`` would stop every Ray
process on the host, whoever started it), and the directory is deleted.

Ray will not bind to 127.0.0.1 only: it resolves the loopback address to the host's own and
listens on all interfaces (see :mod:`privledger.node.compute` on what a real cluster needs).

By hand: ``python -m tests.ray_cluster`` starts one and prints its address until Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from privledger.evm.anvil import free_port

RAY = Path(sys.executable).with_name("ray")  # the CLI of the cluster extra, beside this Python
NODE_CPUS = 1
OBJECT_STORE_BYTES = 200 * 10**6  # Ray's minimum is 75 MiB; the tests move a few MB
ADDRESS_FILE = "ray_current_cluster"  # ray start writes the head's address there once it runs


class RayUnavailable(RuntimeError):
    """The throwaway cluster could not be started (no ray CLI, a node failed or timed out)."""


@dataclass
class RayCluster:
    address: str  # the head's GCS, host:port, for ray.init(address=...)
    nodes: list[subprocess.Popen[bytes]]  # the `ray start --block` of the head, then the node


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _start_node(
    base: Path, name: str, options: list[str], timeout_s: float
) -> tuple[subprocess.Popen[bytes], str]:
    """``ray start --block`` with ``options`` in a new session; once the node runs, its process
    and the head's address."""
    temp_dir = base / name
    temp_dir.mkdir()
    log_path = base / f"{name}.log"
    command = [str(RAY), "start", "--block", "--disable-usage-stats", *options]
    command += ["--temp-dir", str(temp_dir), "--num-cpus", str(NODE_CPUS)]
    command += ["--object-store-memory", str(OBJECT_STORE_BYTES)]
    command += ["--dashboard-agent-listen-port", str(free_port())]
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    address_file = temp_dir / ADDRESS_FILE
    while not address_file.is_file():
        if process.poll() is not None:
            raise RayUnavailable(
                f"ray start ({name}) exited with code {process.returncode}:\n{_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            _stop(process)
            raise RayUnavailable(f"ray start ({name}) did not start in {timeout_s:.0f}s")
        time.sleep(0.2)
    return process, address_file.read_text().strip()


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (Ray's workers leave the node's process group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill a node: its process group (raylet, object store, GCS) and every process below its
    ``ray start`` (the workers). The cluster is thrown away, so no draining (``ray start
    --block`` drains for 30 s on SIGTERM)."""
    pids = _descendants(process.pid)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


@contextmanager
def start_ray_cluster(timeout_s: float = 120.0) -> Iterator[RayCluster]:
    """Start the head and a second node; yield the cluster; kill both and delete their files."""
    if not RAY.is_file():
        raise RayUnavailable(f"{RAY} not found: install the cluster extra (`make bootstrap` does)")
    base = Path(tempfile.mkdtemp(prefix="plray-"))  # short: Ray's socket paths live under it
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        head = [*("--head", "--port", str(free_port()), "--include-dashboard", "false")]
        head += ["--dashboard-port", str(free_port())]
        head += ["--ray-client-server-port", str(free_port())]
        process, address = _start_node(base, "head", head, timeout_s)
        nodes.append(process)
        process, _ = _start_node(base, "node", ["--address", address], timeout_s)
        nodes.append(process)
        yield RayCluster(address, nodes)
    finally:
        for process in reversed(nodes):
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    with start_ray_cluster() as running:
        print(running.address, flush=True)
        with suppress(KeyboardInterrupt):
            running.nodes[0].wait()
