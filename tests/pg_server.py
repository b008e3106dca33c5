"""A throwaway PostgreSQL 15 server for the ``postgres`` tests: its own data directory in a fresh
temporary directory, a free port on 127.0.0.1, a random password, no Unix socket; stopped and
deleted on exit. PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` user of the Debian package (``make test`` installs it where missing).

By hand: ``python -m tests.pg_server`` starts one and prints its URL until Ctrl-C."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

from privledger.evm.anvil import free_port

BIN_DIR = Path(os.environ.get("PRIVLEDGER_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"  # who runs the server when the tests run as root
ADMIN = "privledger"  # the server's superuser, who creates a database per node or test
# durability off: the server lives for one test session
SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200")


class PostgresUnavailable(RuntimeError):
    """The throwaway server could not be started (binaries missing, initdb or start failed)."""


@dataclass
class PostgresServer:
    port: int
    password: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` (psycopg 3 driver)."""
        return f"postgresql+psycopg://{ADMIN}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=ADMIN,
            password=self.password,
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self, name: str) -> str:
        """A new, empty database (unique ``name``: a node's or a test's); its URL."""
        with self.connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_server_user() -> dict[str, object]:
    """Popen arguments that drop root to the server user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError as missing:
        raise PostgresUnavailable(
            f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as "
            "(install the Debian package postgresql)"
        ) from missing
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def start_postgres(timeout_s: float = 120.0) -> Iterator[PostgresServer]:
    """Initialise, start and yield a server; stop it and delete its files on exit."""
    for program in ("initdb", "postgres"):
        if not (BIN_DIR / program).is_file():
            raise PostgresUnavailable(
                f"{BIN_DIR / program} not found: install PostgreSQL 15 (Debian package "
                "postgresql; `make test` does) or point PRIVLEDGER_PG_BIN at its bin directory"
            )
    drop = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="privledger-pg-"))
    if drop:
        os.chown(base, drop["user"], drop["group"])
    data, log_path = base / "data", base / "server.log"
    password = secrets.token_hex(16)
    password_file = base / "password"
    password_file.write_text(password + "\n")
    if drop:
        os.chown(password_file, drop["user"], drop["group"])
    process: subprocess.Popen[bytes] | None = None
    try:
        initdb = subprocess.run(
            [
                *(str(BIN_DIR / "initdb"), "-D", str(data), "-U", ADMIN),
                *("--auth=scram-sha-256", "--pwfile", str(password_file)),
                *("--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"),
            ],
            capture_output=True,
            cwd=base,
            timeout=timeout_s,
            **drop,
        )
        if initdb.returncode != 0:
            raise PostgresUnavailable(f"initdb failed:\n{initdb.stderr.decode(errors='replace')}")
        port = free_port()
        command = [str(BIN_DIR / "postgres"), "-D", str(data), "-p", str(port)]
        command += ["-h", "127.0.0.1", "-k", ""]
        for setting in SETTINGS:
            command += ["-c", setting]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=base, **drop
            )
        server = PostgresServer(port, password, process, log_path)
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise PostgresUnavailable(
                    f"postgres exited with code {process.returncode}:\n{_tail(log_path)}"
                )
            try:
                server.connect().close()
                break
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"postgres did not accept connections in {timeout_s:.0f}s ({error}):\n"
                        f"{_tail(log_path)}"
                    ) from error
                time.sleep(0.2)
        yield server
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, stop
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    with start_postgres() as running:
        print(running.url(), flush=True)
        with suppress(KeyboardInterrupt):
            running.process.wait()
