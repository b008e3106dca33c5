"""The node's HTTP protocol: a deadline for a request's headers, none for its body, and a cap
per address on connections still sending headers; against a real uvicorn server."""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from pydantic import IPvAnyNetwork, TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse

from privledger.api.connections import header_deadline, raise_open_files_limit
from privledger.evm.anvil import free_port

DEADLINE_S = 0.5
PARTIAL = b"GET / HTTP/1.1\r\nHost: x\r\n"  # the headers never end
REQUEST = PARTIAL + b"\r\n"


async def count_body(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the number of body bytes the request carried; ``/early`` answers at once,
    without reading the body."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/early":
        await JSONResponse({"error": "refused"}, 401)(scope, receive, send)
        return
    size = 0
    async for chunk in Request(scope, receive).stream():
        size += len(chunk)
    await JSONResponse({"bytes": size})(scope, receive, send)


Serve = Callable[..., int]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a uvicorn server with the node's protocol (``header_deadline(**options)``) on a
    free port; its port. Stopped after the test."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(trusted: list[str] | None = None, **options: Any) -> int:
        networks = TypeAdapter(list[IPvAnyNetwork]).validate_python(trusted or [])
        port = free_port()
        config = uvicorn.Config(
            count_body,
            host="127.0.0.1",
            port=port,
            log_level="error",
            http=header_deadline(networks, **{"timeout_s": DEADLINE_S, **options}),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return port

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (sending nothing before)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def answer(sock: socket.socket) -> bytes:
    """The response to the request sent on ``sock``, read until its JSON body ends."""
    sock.settimeout(5)
    received = b""
    while not received.endswith(b"}"):
        chunk = sock.recv(4096)
        assert chunk, f"closed before the answer: {received!r}"
        received += chunk
    return received


def test_a_request_whose_headers_never_end_is_closed_at_the_deadline(serve: Serve) -> None:
    port = serve()
    with connect(port) as silent, connect(port) as partial:
        partial.sendall(PARTIAL)
        opened = time.monotonic()
        assert not closed_within(partial, DEADLINE_S * 0.6)
        for _ in range(3):  # a header line now and then does not put the deadline off
            partial.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.05)
        assert closed_within(partial, 3)
        assert DEADLINE_S * 0.9 < time.monotonic() - opened < 3
        assert closed_within(silent, 1)  # a connection that sends nothing has the same deadline


def test_a_body_has_no_deadline(serve: Serve) -> None:
    port = serve()
    with connect(port) as stream:
        stream.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE_S * 4:  # a frame stream, as the peers send
            stream.sendall(b"3\r\nabc\r\n")
            time.sleep(0.1)
        stream.sendall(b"0\r\n\r\n")
        response = answer(stream)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert b'"bytes":' in response and not response.endswith(b'"bytes":0}')


def test_what_is_left_of_a_body_answered_early_goes_by_the_next_deadline(serve: Serve) -> None:
    port = serve()
    with connect(port) as stream:
        stream.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert answer(stream).startswith(b"HTTP/1.1 401")
        answered = time.monotonic()
        with pytest.raises(OSError):  # the server closes the connection while the body trickles
            while time.monotonic() - answered < 5:
                stream.sendall(b"3\r\nabc\r\n")
                time.sleep(0.1)
        assert DEADLINE_S * 0.9 < time.monotonic() - answered < 3


def test_a_kept_alive_connection_has_a_new_deadline_for_each_request(serve: Serve) -> None:
    port = serve()
    with connect(port) as kept:
        for _ in range(3):  # each request well within its own deadline, together beyond it
            time.sleep(DEADLINE_S * 0.5)
            kept.sendall(REQUEST)
            assert answer(kept).startswith(b"HTTP/1.1 200")
        kept.sendall(PARTIAL)  # cancels uvicorn's own keep-alive timer (5 s)
        assert closed_within(kept, 2)


def test_one_address_holds_only_its_share_of_unfinished_requests(serve: Serve) -> None:
    port = serve(timeout_s=30, per_address=4)
    held = [connect(port, "127.0.0.2") for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(PARTIAL)
        time.sleep(0.2)
        with connect(port, "127.0.0.2") as fifth:
            assert closed_within(fifth, 2)  # closed at once, not at the deadline
        with connect(port, "127.0.0.3") as other:  # another address is not held up
            other.sendall(REQUEST)
            assert answer(other).startswith(b"HTTP/1.1 200")
        for sock in held:  # answered and kept alive, each waits for its next headers
            sock.sendall(b"\r\n")
            assert answer(sock).startswith(b"HTTP/1.1 200")
        with connect(port, "127.0.0.2") as fifth:
            assert closed_within(fifth, 2)
        for sock in held:
            sock.close()
        time.sleep(0.2)
        for _ in range(2):  # closed connections no longer count
            with connect(port, "127.0.0.2") as sock:
                sock.sendall(REQUEST)
                assert answer(sock).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()


def test_a_trusted_proxy_is_not_capped(serve: Serve) -> None:
    port = serve(trusted=["127.0.0.2/32"], timeout_s=30, per_address=2)
    held = [connect(port, "127.0.0.2") for _ in range(5)]
    try:
        for sock in held:
            sock.sendall(PARTIAL)
        for sock in held:
            sock.sendall(b"\r\n")
            assert answer(sock).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, before[1]))
        assert raise_open_files_limit() == before[1]
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == before[1]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
