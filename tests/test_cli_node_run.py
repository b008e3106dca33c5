"""`privledger node run` takes its address from the PRIVLEDGER_* variables unless given on the
command line (it used to pass 127.0.0.1:8000 itself, so PRIVLEDGER_HOST and _PORT were ignored)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from privledger import cli
from privledger.api import server
from privledger.config import NodeSettings


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[NodeSettings]:
    calls: list[NodeSettings] = []
    monkeypatch.setattr(server, "serve", calls.append)
    return calls


def test_node_run_reads_host_and_port_from_the_environment(
    served: list[NodeSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVLEDGER_HOST", "0.0.0.0")
    monkeypatch.setenv("PRIVLEDGER_PORT", "9123")
    result = CliRunner().invoke(cli.app, ["node", "run", "--org", "x", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (served[0].host, served[0].port) == ("0.0.0.0", 9123)


def test_node_run_options_win_over_the_environment(
    served: list[NodeSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVLEDGER_PORT", "9123")
    args = ["node", "run", "--org", "x", "--home", str(tmp_path), "--port", "9200"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert (served[0].host, served[0].port) == ("127.0.0.1", 9200)
