"""A chain that cannot start says so: with its port taken, `start_anvil` and `privledger chain up`
fail with the reason instead of reporting success while another program answers on the port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from privledger.config import Settings
from privledger.evm.anvil import AnvilError, free_port, start_anvil


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", free_port()))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_taken_port_is_refused_before_anvil_starts(settings: Settings, taken_port: int) -> None:
    with pytest.raises(AnvilError, match=f"port {taken_port} on 127.0.0.1 is in use"):
        start_anvil(settings.chain_dir, port=taken_port)


def test_chain_up_fails_on_a_taken_port(taken_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "privledger.cli", "chain", "up", "--port", str(taken_port)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "chain not started" in result.stderr and "is in use" in result.stderr
    assert "chain up at" not in result.stdout + result.stderr
