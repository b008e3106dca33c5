"""docker-compose.yml brought up without Docker: its postgres init, its deployer and every
organisation node run as local processes with the services' own commands and environment
(``tests/deploy/compose.py``), on anvil shaped like the validators' chain behind a front that
refuses what Besu would, and on the session's PostgreSQL. The nodes start, and a PSI task between
two of them settles. A change to the compose file, its env files or deploy/*.sh that breaks the
start of any service fails here."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from privledger.config import Settings
from privledger.demo import NodeProcess, run_scenario
from tests.deploy.compose import Compose, tail
from tests.pg_server import PostgresServer

ORGS = ("bank-a", "bank-b", "telecom")  # run_scenario's organisations


STARTUP_S = 300  # three nodes each drawing scrypt keystores at once, on a loaded 2-core machine
TOKEN_S = 60  # a token command's time (six run at once: all of theirs together)


def _wait_healthy(process: subprocess.Popen[bytes], log: Path, url: str) -> None:
    deadline = time.monotonic() + STARTUP_S
    with httpx.Client(timeout=2) as client:  # one for every poll (each new one loads CAs)
        while True:
            assert process.poll() is None, f"the node exited ({process.returncode}):\n{tail(log)}"
            try:
                if client.get(f"{url}/api/v1/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no health at {url} in {STARTUP_S} s:\n{tail(log)}"
            time.sleep(0.3)


def _tokens(compose: Compose, services: list[str]) -> dict[str, dict[str, str]]:
    """A data owner's and an operator's token for each node's service, issued as an operator of
    the node would: the CLI with the node's environment. The six commands run side by side (one
    after another they took ~15 s of the test, each mostly the CLI's start-up)."""
    roles = ("data_owner", "operator")
    issuing: dict[tuple[str, str], subprocess.Popen[str]] = {}
    for service in services:
        env = compose.environment(service)
        for role in roles:
            command = ["privledger", "node", "token", "--org", env["PRIVLEDGER_ORG"]]
            command += ["--home", env["PRIVLEDGER_HOME"], "--user", f"compose-{role}"]
            issuing[service, role] = subprocess.Popen(
                [*command, "--role", role],
                env=compose.process_environment(service),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
    tokens: dict[str, dict[str, str]] = {service: {} for service in services}
    deadline = time.monotonic() + TOKEN_S * len(issuing)  # what they had one after another
    try:
        for (service, role), issued in issuing.items():
            out, err = issued.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert issued.returncode == 0, err
            tokens[service][role] = out.strip()
    finally:
        for issued in issuing.values():
            if issued.poll() is None:
                issued.kill()
                issued.wait()
    return tokens


def _admitted(log: Path) -> dict[str, int]:
    """The org ids the deployer's `consortium admit` steps printed."""
    lines = (line for line in log.read_text().splitlines() if line.startswith('{"admin"'))
    return {entry["name"]: entry["orgId"] for entry in map(json.loads, lines)}


def _reaches(url: str, database: str) -> bool:
    """Whether the role of ``url`` (a node's database URL) can read ``database``'s tables."""
    parsed = make_url(url)
    try:
        with psycopg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            password=parsed.password,
            dbname=database,
            connect_timeout=5,
        ) as connection:
            connection.execute("SELECT count(*) FROM local_task").fetchone()
            return True
    except psycopg.Error:
        return False


@pytest.mark.compose
@pytest.mark.postgres
def test_compose_services_run_as_processes_and_settle_a_psi_task(
    settings: Settings, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    compose = Compose(settings.project_root, tmp_path / "volumes", tmp_path / "logs")
    deployer, *nodes = compose.privledger_services()
    assert {f"node-{org}" for org in ORGS} <= set(nodes)
    compose.init_postgres(postgres_server)
    for node in nodes:
        compose.listen(node, int(compose.services[node]["environment"]["PRIVLEDGER_PORT"]))

    with compose.chain(settings.chain_dir) as front:
        process, log = compose.start(deployer)
        assert process.wait(timeout=300) == 0, tail(log)
        org_ids = _admitted(log)
        started = {node: compose.start(node) for node in nodes}
        try:
            node_urls = {}
            for node, (process, log) in started.items():
                node_urls[node] = f"http://127.0.0.1:{compose.environment(node)['PRIVLEDGER_PORT']}"
                _wait_healthy(process, log, node_urls[node])
            tokens = _tokens(compose, nodes)
            running: dict[str, NodeProcess] = {}
            for node, (process, log) in started.items():
                env = compose.environment(node)
                running[env["PRIVLEDGER_ORG"]] = NodeProcess(
                    env["PRIVLEDGER_ORG"], node_urls[node], process, tokens[node], [], env, log
                )
            summary = run_scenario(running, tmp_path / "data", org_ids)
            assert summary["status"] == "settled" and summary["intersectionCorrect"], summary

            # each node's database role reads its own database and cannot reach another's
            urls = {org: node.env["PRIVLEDGER_DATABASE_URL"] for org, node in running.items()}
            databases = {org: make_url(url).database for org, url in urls.items()}
            assert len(set(databases.values())) == len(urls)
            for org, url in urls.items():
                assert _reaches(url, databases[org]), org
                assert not any(_reaches(url, databases[o]) for o in urls if o != org), org
        finally:
            for process, _ in started.values():
                process.terminate()
            for process, _ in started.values():
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()

    seen = front.seen
    assert seen.methods["eth_sendRawTransaction"] > 0
    assert seen.untagged_estimates == 0  # every estimate names its block
    assert set(seen.gas_prices) == {0}  # a zero-base-fee chain: priced at zero, never asked
    assert seen.methods["eth_gasPrice"] == 0
