"""Readable chain errors: custom-error reverts decoded against our contracts' ABIs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.conversions import to_hex

PANIC_SELECTOR = function_signature_to_4byte_selector("Panic(uint256)")
ERROR_STRING_SELECTOR = function_signature_to_4byte_selector("Error(string)")


class ChainError(RuntimeError):
    """Something on the chain did not go as asked."""


class ChainTimeout(ChainError):
    """A transaction was not mined in time, even after being broadcast again."""


class InsufficientFunds(ChainError):
    """The account cannot pay for a transaction: its gas at the price, plus the value sent (a
    task's fee, say)."""


# how JSON-RPC nodes word it: geth and anvil ("insufficient funds for gas * price + value"),
# Besu ("Upfront cost exceeds account balance")
INSUFFICIENT_FUNDS_MESSAGES = ("insufficient funds", "upfront cost exceeds account balance")


def unreverted(message: str) -> ChainError:
    """The error of a request the node refused without a revert: :class:`InsufficientFunds`
    when it says the account cannot pay, else a :class:`ChainError`."""
    lowered = message.lower()
    if any(words in lowered for words in INSUFFICIENT_FUNDS_MESSAGES):
        return InsufficientFunds(message)
    return ChainError(message)


class ChainRevert(ChainError):
    """A call reverted; ``error`` is the custom error's name and ``args`` its named arguments."""

    def __init__(self, error: str, args: dict[str, Any], contract: str | None = None) -> None:
        self.error = error
        self.args_by_name = args
        self.contract = contract
        rendered = ", ".join(f"{name}={_render(value)}" for name, value in args.items())
        where = f"{contract}: " if contract else ""
        super().__init__(f"{where}{error}({rendered})")


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return to_hex(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    return str(value)


def canonical_type(param: dict[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples spelled out), as in signatures."""
    type_name: str = param["type"]
    if type_name.startswith("tuple"):
        inner = ",".join(canonical_type(component) for component in param["components"])
        return f"({inner}){type_name[len('tuple') :]}"
    return type_name


@dataclass(frozen=True)
class _ErrorSpec:
    name: str
    types: list[str]
    names: list[str]


class ErrorDecoder:
    """Maps 4-byte selectors to the custom errors declared in a set of ABIs."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._specs: dict[bytes, _ErrorSpec] = {}
        for abi in abis:
            for entry in abi:
                if entry.get("type") != "error":
                    continue
                types = [canonical_type(param) for param in entry["inputs"]]
                signature = f"{entry['name']}({','.join(types)})"
                names = [param["name"] or f"arg{i}" for i, param in enumerate(entry["inputs"])]
                selector = function_signature_to_4byte_selector(signature)
                self._specs[selector] = _ErrorSpec(entry["name"], types, names)

    def decode(self, data: bytes | str | None, contract: str | None = None) -> ChainRevert:
        """Turn revert data into a ChainRevert; unknown data is reported raw, never swallowed."""
        raw = _as_bytes(data)
        if len(raw) < 4:
            return ChainRevert("Reverted", {"data": to_hex(raw)} if raw else {}, contract)
        selector, payload = raw[:4], raw[4:]
        if selector == ERROR_STRING_SELECTOR:
            (message,) = decode(["string"], payload)
            return ChainRevert("Error", {"message": message}, contract)
        if selector == PANIC_SELECTOR:
            (code,) = decode(["uint256"], payload)
            return ChainRevert("Panic", {"code": hex(code)}, contract)
        spec = self._specs.get(selector)
        if spec is None:
            return ChainRevert("UnknownError", {"data": to_hex(raw)}, contract)
        values = decode(spec.types, payload)
        return ChainRevert(spec.name, dict(zip(spec.names, values, strict=True)), contract)


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    text = data[2:] if data.startswith("0x") else data
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""
