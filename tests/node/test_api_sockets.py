"""The API port of a node of several processes: a socket per process, connections spread over
them by the kernel, and a port already taken refused as with one process."""

from __future__ import annotations

import select
import socket

import pytest

from privledger.node.processes import join, listen


def _accepted(sock: socket.socket) -> int:
    """How many connections are queued on ``sock``, accepting (and closing) them."""
    count = 0
    while select.select([sock], [], [], 0.2)[0]:
        conn, _ = sock.accept()
        conn.close()
        count += 1
    return count


def test_connections_spread_over_the_processes_sockets() -> None:
    primary = listen("127.0.0.1", 0, shared=True)
    port = primary.getsockname()[1]
    other = join("127.0.0.1", port)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
    try:
        counts = [_accepted(primary), _accepted(other)]
    finally:
        for client in clients:
            client.close()
        primary.close()
        other.close()
    assert sum(counts) == 64
    assert min(counts) >= 8, counts  # by a hash of the client's port: about half each


def test_a_port_taken_is_refused_though_shared() -> None:
    taken = socket.create_server(("127.0.0.1", 0), reuse_port=True)
    with taken, pytest.raises(OSError):
        listen("127.0.0.1", taken.getsockname()[1], shared=True).close()
