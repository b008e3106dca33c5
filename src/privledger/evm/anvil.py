"""Launch a local anvil chain as a handle: 127.0.0.1 (or a host's own address), a chosen or free
port, a state file.

With a state file the chain is loaded from it at start and dumped to it on a clean shutdown and
every few seconds, so a restarted chain keeps every record: its blocks, transactions, receipts and
logs, and the latest state. The state of every past block is not dumped
(``--preserve-historical-states``): that made the file grow by a snapshot per block (53 MB after
400 blocks) and anvil spend a third of a core rewriting it every few seconds; nothing here reads
past states, and a running chain still answers them from memory.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

logger = logging.getLogger(__name__)

DEFAULT_CHAIN_ID = 31337
STATE_DUMP_INTERVAL_S = 2


class AnvilError(RuntimeError):
    """anvil could not be found, started or stopped."""


def find_anvil(chain_dir: Path) -> Path:
    """The native anvil binary from the npm package, else one on the PATH."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    native = chain_dir / "node_modules" / "@foundry-rs" / f"anvil-linux-{arch}" / "bin" / "anvil"
    if native.is_file():
        return native
    wrapper = chain_dir / "node_modules" / ".bin" / "anvil"
    if wrapper.is_file():
        return wrapper
    on_path = shutil.which("anvil")
    if on_path is None:
        raise AnvilError("anvil is not installed: run `npm ci` in chain/ (or `make bootstrap`)")
    return Path(on_path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(port: int) -> None:
    """:class:`AnvilError` if something already listens on 127.0.0.1:``port``: anvil would exit
    with "Address already in use" while the other program answers our readiness check, and a
    chain we did not start would pass for ours."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as a server binds: a listener fails, connections left in TIME_WAIT by one do not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise AnvilError(
                f"port {port} on 127.0.0.1 is in use ({exc.strerror}): another chain or program "
                "listens there; stop it or choose another port"
            ) from exc


@dataclass
class AnvilHandle:
    """A running anvil process; ``close()`` stops it (dumping state when a state file is set)."""

    process: subprocess.Popen[bytes]
    port: int
    chain_id: int
    state_file: Path | None
    log_file: Path | None = None
    host: str = "127.0.0.1"
    _closed: bool = field(default=False, repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self, timeout_s: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # anvil dumps --state on SIGINT
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("anvil did not stop in %.0fs, killing it", timeout_s)
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> AnvilHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _wait_ready(handle: AnvilHandle, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise AnvilError(f"anvil exited with code {handle.process.returncode} at start")
        try:
            response = httpx.post(handle.rpc_url, json=payload, timeout=1.0)
            if response.status_code == 200 and "result" in response.json():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    handle.close()
    raise AnvilError(f"anvil did not answer on {handle.rpc_url} within {timeout_s:.0f}s")


def keep_one_genesis(state_file: Path) -> bool:
    """Leave one block numbered 0 in an anvil state file, the chain's own: whether others went.

    anvil (1.7) makes a genesis block at each start, adds it to the blocks it loads from the
    state file and dumps them all; a file restarted a few times holds several blocks numbered 0,
    one per second it was started in, and which of them a start takes as its genesis varies. The
    chain's genesis hash then changed from one start to the next, and every deployment recorded
    against it (and every node store bound to it) looked like another chain's. The chain's own
    genesis is the oldest: each other one was made at a later start, after the first blocks."""
    try:
        state = json.loads(state_file.read_text())
        blocks = state["blocks"]
        genesis = [block for block in blocks if int(block["header"]["number"], 16) == 0]
        own = min(genesis, key=lambda block: int(block["header"]["timestamp"], 16))
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no file yet, or one anvil itself will report
    if len(genesis) == 1:
        return False
    state["blocks"] = [block for block in blocks if block is own or block not in genesis]
    kept = state_file.with_name(state_file.name + ".tmp")
    kept.write_text(json.dumps(state))
    os.replace(kept, state_file)
    logger.info("state file %s: kept the genesis block, dropped %d", state_file, len(genesis) - 1)
    return True


def start_anvil(
    chain_dir: Path,
    *,
    port: int | None = None,
    state_file: Path | None = None,
    chain_id: int = DEFAULT_CHAIN_ID,
    accounts: int = 10,
    log_file: Path | None = None,
    ready_timeout_s: float = 30.0,
    host: str = "127.0.0.1",
    launcher: Sequence[str] = (),
    options: Sequence[str] = (),
) -> AnvilHandle:
    """Start anvil on ``host`` and wait until it answers JSON-RPC. Any other address than
    127.0.0.1 is a host of its own, e.g. a network namespace that ``launcher`` (``ip netns exec
    NAME``) runs anvil in: there ``port`` must be given, and nothing else listens on it. Further
    anvil ``options`` (e.g. ``--block-time 1``, ``--base-fee 0``) shape a chain like another."""
    local = host == "127.0.0.1"
    if port is None and not local:
        raise AnvilError(f"choose the port anvil listens on at {host}")
    chosen_port = port if port is not None else free_port()
    if local:
        check_port_free(chosen_port)
    command = [
        *launcher,
        str(find_anvil(chain_dir)),
        "--host",
        host,
        "--port",
        str(chosen_port),
        "--chain-id",
        str(chain_id),
        "--accounts",
        str(accounts),
        *options,
    ]
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        keep_one_genesis(state_file)
        command += ["--state", str(state_file), "--state-interval", str(STATE_DUMP_INTERVAL_S)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    output = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        if log_file is not None and not isinstance(output, int):
            output.close()
    handle = AnvilHandle(process, chosen_port, chain_id, state_file, log_file, host)
    _wait_ready(handle, ready_timeout_s)
    if process.poll() is not None:  # it answered, yet our anvil is gone: someone else answered
        raise AnvilError(
            f"anvil exited with code {process.returncode}; {handle.rpc_url} is not ours"
        )
    logger.info("anvil up on %s (chain id %d)", handle.rpc_url, chain_id)
    return handle
