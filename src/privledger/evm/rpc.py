"""A lean JSON-RPC path for the hot calls, and ABI codecs computed once per function and event.

web3.py costs about 3 ms of CPU for one ``eth_call`` (its middleware asks the node for the chain id
again, formats every field, looks the function up by hashing every signature of the ABI); the same
request over a kept-alive ``http.client`` connection costs about 0.2 ms. A node submitting tasks or
indexing blocks makes several such calls per transaction, so the transaction client and the indexer
use this path and keep web3 for everything else (its ABI codec, signing, contract objects).

Over HTTP(S) each thread keeps its own connection; any other provider (IPC, a test provider, an
HTTP provider with extra request options) is used through its own ``make_request``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from eth_abi.grammar import ABIType, TupleType, parse
from eth_utils.abi import event_abi_to_log_topic, function_abi_to_4byte_selector
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint

from privledger.evm.errors import canonical_type
from privledger.observability.metrics import observe_rpc

RPC_TIMEOUT_S = 30.0
_HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}
_T = TypeVar("_T")
_R = TypeVar("_R")
_STALE_CONNECTION = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    ConnectionResetError,
    BrokenPipeError,
)


@dataclass(frozen=True)
class _Written:
    """A request sent on a connection whose answer is still to be read."""

    connection: http.client.HTTPConnection
    body: bytes
    reused: bool  # on a kept-alive connection, which the node may have closed meanwhile


class RpcUnavailable(OSError):
    """The node could not be reached, or its answer was cut or garbled."""


class RpcError(RuntimeError):
    """The node answered a JSON-RPC request with an error object."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        self.code = error.get("code")
        self.message = str(error.get("message") or "")
        super().__init__(f"{self.message} (code {self.code})")


def revert_data(error: RpcError) -> tuple[bool, str | None]:
    """Whether ``error`` is a revert and, if so, its revert data (web3's own reading of it)."""
    data = error.error.get("data")
    if isinstance(data, str):
        return True, data
    if "data" in error.error and data is None:
        return True, None
    if isinstance(data, dict) and error.message:
        inner = data.get("data")
        return True, inner if isinstance(inner, str) else None
    if error.message and (error.code == 3 or "execution reverted" in error.message):
        return True, None
    return False, None


class JsonRpc:
    """JSON-RPC requests to the node behind ``w3``, cheap enough for the hot path."""

    def __init__(self, w3: Web3, *, timeout_s: float = RPC_TIMEOUT_S) -> None:
        self.w3 = w3
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._target: tuple[str, str, int, str] | None = None
        self._timeout_s = timeout_s
        provider = w3.provider
        if isinstance(provider, HTTPProvider) and provider.endpoint_uri:
            options = dict(provider._request_kwargs or {})
            timeout = options.pop("timeout", None)
            parts = urlsplit(str(provider.endpoint_uri))
            plain = parts.scheme in ("http", "https") and not parts.username and not options
            if plain and parts.hostname:
                port = parts.port or (443 if parts.scheme == "https" else 80)
                path = parts.path or "/"
                if parts.query:
                    path += "?" + parts.query
                self._target = (parts.scheme, parts.hostname, port, path)
                if isinstance(timeout, (int, float)):
                    self._timeout_s = float(timeout)

    def request(self, method: str, params: Sequence[Any]) -> Any:
        """The result of one request; an error answer raises RpcError."""
        return self.start(method, params)()

    def start(self, method: str, params: Sequence[Any]) -> Callable[[], Any]:
        """Write one request now; the function returned reads its result (in this thread), so a
        caller can hold a lock while its request goes out and release it before the answer."""
        started = time.perf_counter()
        payload = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": list(params),
        }
        if self._target is None:
            answer = self._post(payload)
            observe_rpc(method, started)
            return lambda: _result(answer)
        written = self._guarded(self._write, payload)

        def read() -> Any:
            answer = self._guarded(self._read, written)
            observe_rpc(method, started)
            return _result(answer)

        return read

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several requests in one round trip; each item is its result or an RpcError."""
        if self._target is None:
            return [self._try(method, params) for method, params in calls]
        started = time.perf_counter()
        ids = [next(self._ids) for _ in calls]
        payload = [
            {"jsonrpc": "2.0", "id": ident, "method": method, "params": list(params)}
            for ident, (method, params) in zip(ids, calls, strict=True)
        ]
        answers = self._post(payload)
        observe_rpc("batch", started)
        if not isinstance(answers, list):  # a node refusing batches answers with one error
            return [self._try(method, params) for method, params in calls]
        by_id = {answer.get("id"): answer for answer in answers}
        out: list[Any] = []
        for ident in ids:
            answer = by_id.get(ident)
            if answer is None:
                out.append(RpcError({"code": -32603, "message": "no answer in the batch"}))
                continue
            try:
                out.append(_result(answer))
            except RpcError as exc:
                out.append(exc)
        return out

    def _try(self, method: str, params: Sequence[Any]) -> Any:
        try:
            return self.request(method, params)
        except RpcError as exc:
            return exc

    def _post(self, payload: Any) -> Any:
        if self._target is None:
            if isinstance(payload, list):
                raise TypeError("batches go through _try without a plain HTTP endpoint")
            return self.w3.provider.make_request(
                cast(RPCEndpoint, payload["method"]), payload["params"]
            )
        return self._guarded(self._read, self._guarded(self._write, payload))

    def _guarded(self, step: Callable[[_T], _R], arg: _T) -> _R:
        """One step of an HTTP exchange; a lost connection or a garbled answer is RpcUnavailable."""
        assert self._target is not None
        try:
            return step(arg)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if isinstance(exc, RpcUnavailable):
                raise
            raise RpcUnavailable(f"no answer from the chain at {self._target[1]}: {exc!r}") from exc

    def _write(self, payload: Any) -> _Written:
        """Send a request on this thread's kept-alive connection (a new one if there is none)."""
        assert self._target is not None
        body = json.dumps(payload, separators=(",", ":")).encode()
        connection = getattr(self._local, "connection", None)
        reused = connection is not None
        if connection is None:
            connection = self._connect()
        try:
            connection.request("POST", self._target[3], body, _HEADERS)
        except _STALE_CONNECTION:
            connection.close()
            self._local.connection = None
            if not reused:
                raise
            connection = self._connect()
            connection.request("POST", self._target[3], body, _HEADERS)
            reused = False
        except BaseException:
            connection.close()
            self._local.connection = None
            raise
        return _Written(connection, body, reused)

    def _read(self, written: _Written) -> Any:
        """The answer to a written request, which is sent again on a new connection if the node
        had closed the kept-alive one before reading it."""
        assert self._target is not None
        connection = written.connection
        try:
            response = connection.getresponse()
            data = response.read()
        except _STALE_CONNECTION:
            connection.close()
            self._local.connection = None
            if not written.reused:
                raise
            connection = self._connect()
            connection.request("POST", self._target[3], written.body, _HEADERS)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            connection.close()
            self._local.connection = None
            raise
        if response.status != 200:
            raise RpcError(
                {"code": response.status, "message": data[:200].decode(errors="replace")}
            )
        if response.will_close:
            connection.close()
            self._local.connection = None
        return json.loads(data)

    def _connect(self) -> http.client.HTTPConnection:
        assert self._target is not None
        scheme, host, port, _ = self._target
        factory = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        connection = factory(host, port, timeout=self._timeout_s)
        self._local.connection = connection
        return connection


def _result(answer: Any) -> Any:
    if not isinstance(answer, dict):
        raise RpcError({"code": -32603, "message": f"unexpected answer {answer!r:.200}"})
    error = answer.get("error")
    if error is not None:
        raise RpcError(error if isinstance(error, dict) else {"message": str(error)})
    return answer.get("result")


# --- ABI codecs --------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def checksum_address(value: str) -> str:
    """``to_checksum_address``, remembered: the same few addresses (contracts, members) come back
    in every block, and each checksum is a keccak."""
    return str(to_checksum_address(value))


@lru_cache(maxsize=512)
def _abi_type(type_str: str) -> ABIType:
    return cast(ABIType, parse(type_str))


def _checksummed(abi_type: ABIType, value: Any) -> Any:
    """``value`` as web3 returns decoded data: addresses checksummed, arrays as lists, structs
    as tuples."""
    if abi_type.arrlist:
        item_type = abi_type.item_type
        return [_checksummed(item_type, item) for item in value]
    if isinstance(abi_type, TupleType):
        return tuple(
            _checksummed(component, item)
            for component, item in zip(abi_type.components, value, strict=True)
        )
    if getattr(abi_type, "base", None) == "address":
        return checksum_address(value)
    return value


def _normalise(w3: Web3, types: Sequence[str], data: bytes) -> list[Any]:
    values = w3.codec.decode(types, data)
    out = []
    for type_str, value in zip(types, values, strict=True):
        plain = "address" not in type_str and "[" not in type_str and "(" not in type_str
        out.append(value if plain else _checksummed(_abi_type(type_str), value))
    return out


@dataclass(frozen=True)
class FunctionCodec:
    """One function of an ABI: its selector, and its inputs and outputs decoded as web3 does."""

    name: str
    selector: bytes
    input_names: tuple[str, ...]
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    input_fields: tuple[tuple[str, ...] | None, ...]  # a struct input's field names

    @classmethod
    def of(cls, entry: dict[str, Any]) -> FunctionCodec:
        inputs = entry.get("inputs", [])
        return cls(
            entry["name"],
            bytes(function_abi_to_4byte_selector(entry)),  # type: ignore[arg-type]
            tuple(param["name"] for param in inputs),
            tuple(canonical_type(param) for param in inputs),
            tuple(canonical_type(param) for param in entry.get("outputs", [])),
            tuple(
                tuple(field["name"] for field in param["components"])
                if param["type"] == "tuple"
                else None
                for param in inputs
            ),
        )

    def decode_output(self, w3: Web3, data: bytes) -> Any:
        """What ``ContractFunction.call()`` returns: the one value, or the list of values."""
        values = _normalise(w3, self.output_types, data)
        return values[0] if len(values) == 1 else values

    def decode_input(self, w3: Web3, data: bytes) -> dict[str, Any]:
        """What ``Contract.decode_function_input`` returns as arguments (flat inputs)."""
        values = _normalise(w3, self.input_types, data[4:])
        return {
            name: value if fields is None else dict(zip(fields, value, strict=True))
            for name, fields, value in zip(self.input_names, self.input_fields, values, strict=True)
        }


@lru_cache(maxsize=256)
def function_codec(abi_json: str) -> FunctionCodec:
    return FunctionCodec.of(json.loads(abi_json))


def codec_of(entry: Any) -> FunctionCodec:
    """The codec of an ABI function entry (cached by its JSON text)."""
    return function_codec(json.dumps(entry, sort_keys=True))


_DYNAMIC_INDEXED = ("string", "bytes")


@dataclass(frozen=True)
class EventCodec:
    """One event of an ABI: its topic, and its arguments decoded as web3's ``process_log`` does."""

    name: str
    topic: bytes
    topic_names: tuple[str, ...]
    topic_types: tuple[str, ...]
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]

    @classmethod
    def of(cls, entry: dict[str, Any]) -> EventCodec:
        indexed = [param for param in entry["inputs"] if param.get("indexed")]
        plain = [param for param in entry["inputs"] if not param.get("indexed")]
        topic_types = []
        for param in indexed:
            type_str = canonical_type(param)
            dynamic = type_str in _DYNAMIC_INDEXED or type_str.endswith("]") or "(" in type_str
            topic_types.append("bytes32" if dynamic else type_str)  # hashed in the topic
        return cls(
            entry["name"],
            bytes(event_abi_to_log_topic(entry)),  # type: ignore[arg-type]
            tuple(param["name"] for param in indexed),
            tuple(topic_types),
            tuple(param["name"] for param in plain),
            tuple(canonical_type(param) for param in plain),
        )

    def decode(self, w3: Web3, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        if len(topics) != len(self.topic_types) + 1:
            raise ValueError(f"{self.name}: expected {len(self.topic_types) + 1} topics")
        args: dict[str, Any] = {}
        for name, type_str, topic in zip(
            self.topic_names, self.topic_types, topics[1:], strict=True
        ):
            args[name] = _normalise(w3, [type_str], topic)[0]
        args.update(zip(self.data_names, _normalise(w3, self.data_types, data), strict=True))
        return args


def to_bytes(value: str | bytes | None) -> bytes:
    """0x-hex text (as in JSON-RPC answers) as bytes."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return bytes(HexBytes(value))


def to_int(value: str | int) -> int:
    return value if isinstance(value, int) else int(value, 16)
