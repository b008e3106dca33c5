"""A JSON-RPC front for anvil that refuses what the compose network's Besu validators refuse, and
records what the clients sent through it.

anvil is the chain underneath (blocks, state, receipts are real); this front adds the rules of
Besu's transaction pool and permissioning that anvil does not have, from Besu's source:

- ``eth_sendRawTransactionSync`` is not a Besu method: answered -32601, so every client falls
  back to send-and-poll;
- the sequenced pool refuses a transaction whose nonce is ``window`` or more ahead of the sender's
  mined transaction count (``AbstractPendingTransactionsSorter.addTransaction``:
  ``nonce - senderNonce >= ceil(tx-pool-limit-by-account-percentage * tx-pool-max-size)``, 5 with
  the defaults) with -32000 "Transaction nonce is too distant from current sender nonce";
- with account permissioning, a sender missing from the allowlist is refused with -32007;
- a gas price under the validators' minimum is refused with -32009.

What this cannot be is Besu itself: the window is checked against the mined count when the
transaction arrives, as Besu does, but anvil, not Besu, then holds and orders the pool.

It also holds our own rule, which Besu 25.6-25.7 made necessary: an ``eth_estimateGas`` without a
block tag is answered with an error. And it counts what went through (``Seen``): the methods, the
gas price of every transaction, and how far ahead of the mined count each accepted nonce was.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import rlp
from eth_account import Account
from hexbytes import HexBytes

from privledger.evm.anvil import free_port

BESU_DEFAULT_WINDOW = 5  # ceil(0.001 * 4096): Besu's defaults for the sequenced pool
TOO_DISTANT = "Transaction nonce is too distant from current sender nonce"


@dataclass
class Seen:
    """What the clients sent through the front."""

    methods: Counter[str] = field(default_factory=Counter)
    gas_prices: Counter[int] = field(default_factory=Counter)
    untagged_estimates: int = 0
    too_distant: int = 0  # transactions refused for the window
    ahead: Counter[int] = field(default_factory=Counter)  # accepted: nonce - mined count


@dataclass
class BesuRules:
    window: int = BESU_DEFAULT_WINDOW
    allowlist: frozenset[str] | None = None  # lower-case accounts; None: no account permissioning
    min_gas_price: int = 0


def _error(request_id: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def nonce_and_gas_price(raw: bytes) -> tuple[int, int]:
    """The nonce and gas price (max fee per gas for typed transactions) of a signed transaction."""
    if raw[0] >= 0xC0:  # legacy: [nonce, gasPrice, gas, to, value, data, v, r, s]
        fields = rlp.decode(raw)
        return int.from_bytes(fields[0], "big"), int.from_bytes(fields[1], "big")
    fields = rlp.decode(raw[1:])  # typed: [chainId, nonce, ...]; 1559: maxFeePerGas at 3
    price = fields[2] if raw[0] == 1 else fields[3]
    return int.from_bytes(fields[1], "big"), int.from_bytes(price, "big")


class BesuFront:
    def __init__(self, upstream: str, rules: BesuRules) -> None:
        self.upstream = upstream
        self.rules = rules
        self.seen = Seen()
        self._lock = threading.Lock()  # one transaction admitted at a time, as Besu's pool lock
        self._http = httpx.Client(timeout=60)

    def _forward(self, call: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._http.post(self.upstream, json=call).json()
        return answer

    def _mined_count(self, sender: str) -> int:
        call = {"jsonrpc": "2.0", "id": 0, "method": "eth_getTransactionCount"}
        return int(self._forward({**call, "params": [sender, "latest"]})["result"], 16)

    def handle(self, call: dict[str, Any]) -> dict[str, Any]:
        method, request_id = call.get("method", ""), call.get("id")
        params = call.get("params") or []
        with self._lock:
            self.seen.methods[method] += 1
        if method == "eth_sendRawTransactionSync":
            return _error(request_id, -32601, "Method not found")
        if method == "eth_estimateGas" and len(params) < 2:
            with self._lock:
                self.seen.untagged_estimates += 1
            return _error(request_id, -32602, "eth_estimateGas without a block tag")
        if method == "eth_sendRawTransaction":
            return self._send(call, HexBytes(params[0]))
        return self._forward(call)

    def _send(self, call: dict[str, Any], raw: bytes) -> dict[str, Any]:
        request_id = call.get("id")
        sender = Account.recover_transaction(raw).lower()
        nonce, gas_price = nonce_and_gas_price(raw)
        with self._lock:
            self.seen.gas_prices[gas_price] += 1
            allowlist = self.rules.allowlist
            if allowlist is not None and sender not in allowlist:
                return _error(request_id, -32007, "Sender account not authorized to send")
            if gas_price < self.rules.min_gas_price:
                return _error(request_id, -32009, "Gas price below configured minimum gas price")
            ahead = nonce - self._mined_count(sender)
            if ahead >= self.rules.window:
                self.seen.too_distant += 1
                return _error(request_id, -32000, TOO_DISTANT)
            answer = self._forward(call)
            if "result" in answer:
                self.seen.ahead[ahead] += 1
            return answer


@contextmanager
def besu_front(upstream: str, rules: BesuRules) -> Iterator[tuple[str, BesuFront]]:
    """Serve the front on 127.0.0.1 (a free port) in a thread; its URL and itself."""
    front = BesuFront(upstream, rules)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if isinstance(body, list):
                answer: object = [front.handle(call) for call in body]
            else:
                answer = front.handle(body)
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", front
    finally:
        server.shutdown()
        server.server_close()
        front._http.close()
