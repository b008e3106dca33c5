"""Send transactions reliably: pre-flight, local nonces, receipts with timeouts, rebroadcast.

Every state-changing call is first executed with ``eth_estimateGas`` (an ``eth_call`` that also
sizes the gas), so a revert comes back as a decoded custom error before anything is signed. Nonces
are kept locally per account so many transactions can be in flight; a transaction the node has
forgotten (anvil can drop transactions under bursts) is broadcast again until it is mined or the
receipt timeout passes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt, Wei

from privledger.evm.errors import ChainError, ChainRevert, ChainTimeout, ErrorDecoder

logger = logging.getLogger(__name__)

GAS_MARGIN = 1.25
REBROADCAST_AFTER_S = 2.0
NONCE_RETRIES = 3


@dataclass(frozen=True)
class SentTransaction:
    tx_hash: HexBytes
    raw: HexBytes
    sent_at: float


class ChainClient:
    """One account's view of the chain: calls, pre-flighted transactions and receipts."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        errors: ErrorDecoder,
        *,
        receipt_timeout_s: float = 30.0,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.errors = errors
        self.receipt_timeout_s = receipt_timeout_s
        self.chain_id = w3.eth.chain_id
        self._nonce_lock = threading.Lock()
        self._next_nonce: int | None = None
        self.gas_used = 0  # total gas of this client's mined transactions

    @property
    def address(self) -> ChecksumAddress:
        return self.account.address

    def with_account(self, account: LocalAccount) -> ChainClient:
        """A client for another account on the same connection."""
        return ChainClient(self.w3, account, self.errors, receipt_timeout_s=self.receipt_timeout_s)

    def next_nonce(self) -> int:
        """The nonce this client will sign its next transaction with."""
        with self._nonce_lock:
            if self._next_nonce is None:
                self._next_nonce = self.w3.eth.get_transaction_count(self.address, "pending")
            return self._next_nonce

    def call(self, function: ContractFunction) -> Any:
        """Read a view function; a revert is raised as a decoded ChainRevert."""
        return self._decoded(lambda: function.call({"from": self.address}))

    def preflight_raw(self, sender: str, to: str, data: bytes, value: int = 0) -> None:
        """Execute a call as ``sender`` would send it; a revert raises a decoded ChainRevert."""
        params: TxParams = {
            "from": Web3.to_checksum_address(sender),
            "to": Web3.to_checksum_address(to),
            "data": HexBytes(data),
            "value": Wei(value),
        }
        self._decoded(lambda: self.w3.eth.call(params))

    def transact(self, function: ContractFunction, *, value: int = 0) -> TxReceipt:
        """Pre-flight, sign, send and wait for the receipt of one contract call."""
        return self.wait(self.send(function, value=value))

    def send(self, function: ContractFunction, *, value: int = 0) -> SentTransaction:
        """Pre-flight, sign and send without waiting; pair with ``wait``."""
        params: TxParams = {"from": self.address, "value": Wei(value)}
        gas = self._decoded(lambda: function.estimate_gas(params))
        tx: dict[str, Any] = {
            "to": function.address,
            "data": function._encode_transaction_data(),
            "value": value,
            "gas": int(gas * GAS_MARGIN) + 10_000,
            "gasPrice": self.w3.eth.gas_price,
            "chainId": self.chain_id,
        }
        return self.send_raw_params(tx)

    def deploy(self, abi: list[dict[str, Any]], bytecode: str, *args: Any) -> TxReceipt:
        """Deploy a contract and wait for its receipt (``contractAddress`` holds the address)."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        constructor = factory.constructor(*args)
        params: TxParams = {"from": self.address}
        gas = self._decoded(lambda: constructor.estimate_gas(params))
        tx: dict[str, Any] = {
            "data": constructor.data_in_transaction,
            "gas": int(gas * GAS_MARGIN) + 10_000,
            "gasPrice": self.w3.eth.gas_price,
            "chainId": self.chain_id,
            "value": 0,
        }
        return self.wait(self.send_raw_params(tx))

    def send_raw_params(self, tx: dict[str, Any]) -> SentTransaction:
        """Sign ``tx`` with the next local nonce and broadcast it.

        The account may also sign elsewhere (another process, a relayed non-custodial
        transaction), so a "nonce too low" answer resynchronises the nonce from the node and
        signs again, a few times, before giving up.
        """
        with self._nonce_lock:
            for _ in range(NONCE_RETRIES):
                if self._next_nonce is None:
                    self._next_nonce = self.w3.eth.get_transaction_count(self.address, "pending")
                nonce = self._next_nonce
                signed = self.account.sign_transaction({**tx, "nonce": nonce})
                try:
                    self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except Web3RPCError as exc:
                    self._next_nonce = None  # resynchronise from the node
                    if "nonce too low" in str(exc).lower():
                        continue
                    raise ChainError(f"the node refused the transaction: {exc}") from exc
                self._next_nonce = nonce + 1
                return SentTransaction(
                    HexBytes(signed.hash), HexBytes(signed.raw_transaction), time.time()
                )
        raise ChainError(
            f"nonce of {self.address} kept moving; gave up after {NONCE_RETRIES} tries"
        )

    def wait(self, sent: SentTransaction) -> TxReceipt:
        """Wait for the receipt, broadcasting again if the node forgot the transaction."""
        deadline = time.monotonic() + self.receipt_timeout_s
        last_broadcast = time.monotonic()
        delay = 0.005
        while True:
            try:
                receipt = self.w3.eth.get_transaction_receipt(sent.tx_hash)
            except TransactionNotFound:
                receipt = None
            if receipt is not None:
                self.gas_used += receipt["gasUsed"]
                if receipt["status"] != 1:
                    raise ChainError(f"transaction {sent.tx_hash.to_0x_hex()} reverted on chain")
                return receipt
            now = time.monotonic()
            if now > deadline:
                raise ChainTimeout(
                    f"transaction {sent.tx_hash.to_0x_hex()} not mined in {self.receipt_timeout_s}s"
                )
            if now - last_broadcast > REBROADCAST_AFTER_S and not self._known(sent.tx_hash):
                logger.warning("transaction %s was dropped, broadcasting again", sent.tx_hash.hex())
                try:
                    self.w3.eth.send_raw_transaction(sent.raw)
                except Web3RPCError as exc:
                    logger.info("rebroadcast of %s refused: %s", sent.tx_hash.hex(), exc)
                last_broadcast = now
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _known(self, tx_hash: HexBytes) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return False
        return True

    def _decoded(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except ContractLogicError as exc:
            data = exc.data if isinstance(exc.data, str) else None
            raise self.errors.decode(data) from exc
        except Web3RPCError as exc:
            raise ChainError(str(exc)) from exc


__all__ = ["ChainClient", "ChainError", "ChainRevert", "ChainTimeout", "SentTransaction"]
