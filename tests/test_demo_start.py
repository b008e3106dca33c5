"""A node process that ends while the consortium waits for it is reported with its log's last
lines: the reason is in the error, not only in a file of a temporary home that is gone after."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from privledger.demo import LOG_TAIL_LINES, NodeProcess, spawn, wait_healthy
from privledger.evm.anvil import free_port


def test_a_node_that_exits_at_start_is_reported_with_its_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "bank-b.log"
    lines = [f"starting step {k}" for k in range(LOG_TAIL_LINES + 5)] + ["the home is not ours"]
    text = "\n".join(lines)
    script = f"import sys; print({text!r}); sys.exit(3)"
    command = [sys.executable, "-c", script]
    node = NodeProcess(
        "bank-b", f"http://127.0.0.1:{free_port()}", spawn(command, {}, log), {}, command, {}, log
    )
    with pytest.raises(RuntimeError) as raised:
        wait_healthy(node, timeout_s=60)
    message = str(raised.value).splitlines()
    assert message[0] == "node bank-b exited with code 3:"
    assert message[1:] == lines[-LOG_TAIL_LINES:]  # the last lines, the reason among them
