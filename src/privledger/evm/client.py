"""Send transactions reliably: pre-flight, local nonces, receipts with timeouts, rebroadcast.

Every state-changing call is first executed with ``eth_estimateGas`` (an ``eth_call`` that also
sizes the gas), so a revert comes back as a decoded custom error before anything is signed. Nonces
are kept locally per account, so many transactions can be in flight: the nonce lock is held only
while a transaction is signed and handed to the node, never while its receipt is awaited, and every
client of one account on one connection (``with_account``) shares one nonce counter. Processes that
sign with the same accounts share their counters through a :class:`NonceBook` of their own (a
node's API processes: ``privledger.node.processes.ProcessNonces``), held the same way. A transaction
the node has forgotten (anvil can drop transactions under bursts) is broadcast again until it is
mined or the receipt timeout passes.

A reorganisation that takes back mined transactions of an account moves its nonce on chain back
below the book's: every later transaction would wait behind the gap.
:meth:`ChainClient.close_nonce_gaps` (called by a node's worker when its index forgets blocks)
fills each such gap with empty transactions, so what was signed meanwhile is mined in order and
nothing is signed twice under two nonces; a transaction still unmined after
:data:`REBROADCAST_AFTER_S` closes its own gap the same way. What the reorganisation took back is
re-driven by whoever sent it (the worker anchors again).

The hot calls (``eth_call``, ``eth_estimateGas``, ``eth_sendRawTransaction``, receipt polls) go
over :class:`privledger.evm.rpc.JsonRpc`, about fifteen times cheaper in CPU than web3's request
stack; receipts come back formatted exactly as ``w3.eth.get_transaction_receipt`` formats them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, cast

import rlp
from coincurve import PrivateKey
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address
from eth_utils.hexadecimal import is_hex
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.datastructures import AttributeDict
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxReceipt

from privledger.evm.errors import (
    ChainError,
    ChainRevert,
    ChainTimeout,
    ErrorDecoder,
    unreverted,
)
from privledger.evm.hashing import keccak256
from privledger.evm.rpc import (
    FunctionCodec,
    JsonRpc,
    RpcError,
    RpcUnavailable,
    codec_of,
    revert_data,
    to_int,
)
from privledger.observability.metrics import observe_confirmation

try:  # eth-account's own signing step, given the key object it keeps in a LocalAccount
    from eth_account._utils.signing import sign_transaction_dict as _sign_transaction_dict
except ImportError:  # pragma: no cover - a future eth-account; the public API still works
    _sign_transaction_dict = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

GAS_MARGIN = 1.25
GAS_SHAPES_MAX = 1024  # call shapes whose last gas estimate is kept (ChainClient._prepared)
REBROADCAST_AFTER_S = 2.0
NONCE_RETRIES = 3
# receipt polls: the first soon after sending (anvil mines within a few ms), then less often, so
# a chain with second-long blocks sees a poll every POLL_MAX_S per waiting transaction
POLL_FIRST_S = 0.002
POLL_GROWTH = 1.5
POLL_MAX_S = 0.05
SYNC_SEND = "eth_sendRawTransactionSync"  # EIP-7966: send and answer with the receipt
# Besu's refusal of a nonce too far ahead of the sender's mined count: its sequenced pool keeps
# ceil(tx-pool-limit-by-account-percentage x tx-pool-max-size) future nonces per sender, 5 with
# the defaults (0.001 x 4096)
TOO_DISTANT = "nonce is too distant"
METHOD_NOT_FOUND = -32601


@dataclass(frozen=True)
class SentTransaction:
    tx_hash: HexBytes
    raw: HexBytes
    sent_at: float
    nonce: int | None = None  # None: signed elsewhere (a relayed transaction)


class NonceSlot:
    """The next nonce of one account, as whoever holds its lock sees it; None: read it from the
    node (the pending transaction count) before signing."""

    __slots__ = ("value",)

    def __init__(self, value: int | None = None) -> None:
        self.value = value


class NonceBook(Protocol):
    """Where the next nonce of each account is kept, and the lock that serialises signing."""

    def held(self, address: str) -> AbstractContextManager[NonceSlot]:
        """The account's slot, exclusively, until the block ends; what the block leaves in
        ``value`` is the next nonce for the next holder."""
        ...


class LocalNonces:
    """Nonces kept in this process: a lock and a counter per account (the default)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[threading.Lock, NonceSlot]] = {}

    @contextmanager
    def held(self, address: str) -> Iterator[NonceSlot]:
        with self._lock:
            entry = self._slots.get(address)
            if entry is None:
                entry = self._slots[address] = (threading.Lock(), NonceSlot())
        lock, slot = entry
        with lock:
            yield slot


class _Family:
    """What the clients of several accounts on one connection share: the RPC path, the chain id,
    one client per account and the nonce book (so one nonce counter per account)."""

    def __init__(self, w3: Web3, chain_id: int) -> None:
        self.rpc = JsonRpc(w3)
        self.chain_id = chain_id
        self.lock = threading.Lock()
        self.clients: dict[str, ChainClient] = {}
        self.nonces: NonceBook = LocalNonces()
        self._sync_send: bool | None = None
        self._zero_base_fee: bool | None = None
        # (to, selector, data length, with value) -> the last gas estimate of a call of that
        # shape: see ChainClient._prepared
        self.gas_estimates: dict[tuple[str, bytes, int, bool], int] = {}

    def sync_send(self) -> bool:
        """Whether the node answers ``eth_sendRawTransactionSync`` (EIP-7966: the receipt in the
        answer), asked once: with empty data a node that has the method refuses the data."""
        if self._sync_send is not None:
            return self._sync_send
        with self.lock:
            if self._sync_send is None:
                try:
                    self.rpc.request(SYNC_SEND, ["0x"])
                    self._sync_send = True
                except RpcError as exc:
                    self._sync_send = exc.code != METHOD_NOT_FOUND
                except RpcUnavailable as exc:
                    raise ChainError(str(exc)) from exc
            return self._sync_send

    def zero_base_fee(self) -> bool:
        """Whether the chain's blocks carry a base fee of zero (Besu's ``zeroBaseFee``: the
        consortium chain's free gas), asked once: there every transaction is priced at zero,
        whatever ``eth_gasPrice`` says (Besu derives it from the prices of recent transactions,
        so one outside transaction priced above zero would raise all of ours)."""
        if self._zero_base_fee is None:
            try:
                block = self.rpc.request("eth_getBlockByNumber", ["latest", False])
            except (RpcError, RpcUnavailable) as exc:
                raise ChainError(f"the node gave no latest block: {exc}") from exc
            base_fee = block.get("baseFeePerGas")  # absent before London: no base fee at all
            self._zero_base_fee = base_fee is not None and to_int(base_fee) == 0
        return self._zero_base_fee


class ChainClient:
    """One account's view of the chain: calls, pre-flighted transactions and receipts."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        errors: ErrorDecoder,
        *,
        receipt_timeout_s: float = 30.0,
        _family: _Family | None = None,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.errors = errors
        self.receipt_timeout_s = receipt_timeout_s
        if _family is None:
            _family = _Family(w3, w3.eth.chain_id)
            _family.clients[account.address] = self
        self._family = _family
        self._rpc = _family.rpc
        self.chain_id = _family.chain_id
        self._gas_lock = threading.Lock()
        self.gas_used = 0  # total gas of this client's mined transactions

    @property
    def address(self) -> ChecksumAddress:
        return self.account.address

    def with_account(self, account: LocalAccount) -> ChainClient:
        """The client of another account on the same connection; one per account, so all its
        users share one nonce counter."""
        family = self._family
        with family.lock:
            client = family.clients.get(account.address)
            if client is None or client.receipt_timeout_s != self.receipt_timeout_s:
                client = ChainClient(
                    self.w3,
                    account,
                    self.errors,
                    receipt_timeout_s=self.receipt_timeout_s,
                    _family=family,
                )
                family.clients[account.address] = client
            return client

    def share_nonces(self, book: NonceBook) -> None:
        """Keep the nonces of this connection's accounts in ``book`` from now on: other
        processes signing with the same accounts share it (before the first transaction)."""
        self._family.nonces = book

    def _nonce(self) -> AbstractContextManager[NonceSlot]:
        return self._family.nonces.held(self.address)

    def next_nonce(self) -> int:
        """The nonce this client will sign its next transaction with."""
        with self._nonce() as slot:
            if slot.value is None:
                slot.value = self._pending_count()
            return slot.value

    def call(self, function: ContractFunction) -> Any:
        """Read a view function; a revert is raised as a decoded ChainRevert."""
        data = HexBytes(function._encode_transaction_data())
        return self.decode_result(
            codec_of(function.abi), function.address, self.call_data(function.address, data)
        )

    def call_data(self, to: str, data: bytes) -> bytes:
        """``eth_call`` of encoded call data; a revert is raised as a decoded ChainRevert."""
        request = {"from": self.address, "to": to, "data": HexBytes(data).to_0x_hex()}
        return bytes(HexBytes(self._request("eth_call", [request, "latest"])))

    def decode_result(self, codec: FunctionCodec, to: str, result: bytes) -> Any:
        """What ``ContractFunction.call()`` returns for the answer ``result``."""
        try:
            return codec.decode_output(self.w3, result)
        except DecodingError as exc:
            raise ChainError(
                f"could not decode {codec.name} at {to} from {result.hex()[:100]!r}: "
                "is the contract deployed on this chain?"
            ) from exc

    def preflight_raw(self, sender: str, to: str, data: bytes, value: int = 0) -> None:
        """Execute a call as ``sender`` would send it; a revert raises a decoded ChainRevert."""
        request = {
            "from": Web3.to_checksum_address(sender),
            "to": Web3.to_checksum_address(to),
            "data": HexBytes(data).to_0x_hex(),
            "value": hex(value),
        }
        self._request("eth_call", [request, "latest"])

    def latest_timestamp(self) -> int:
        """The timestamp of the newest block (the chain's clock, which tests may move)."""
        block = self._request("eth_getBlockByNumber", ["latest", False])
        return to_int(block["timestamp"])

    def transact(self, function: ContractFunction, *, value: int = 0) -> TxReceipt:
        """Pre-flight, sign, send and wait for the receipt of one contract call."""
        data = HexBytes(function._encode_transaction_data())
        return self.transact_data(function.address, data, value=value)

    def send(self, function: ContractFunction, *, value: int = 0) -> SentTransaction:
        """Pre-flight, sign and send without waiting; pair with ``wait``."""
        return self.send_data(
            function.address, HexBytes(function._encode_transaction_data()), value=value
        )

    def transact_data(self, to: str, data: bytes, *, value: int = 0) -> TxReceipt:
        """``transact`` for encoded call data."""
        return self.transact_params(self._prepared(to, data, value))

    def send_data(self, to: str, data: bytes, *, value: int = 0) -> SentTransaction:
        """Pre-flight, sign and send encoded call data without waiting."""
        return self.send_raw_params(self._prepared(to, data, value))

    def _prepared(self, to: str, data: bytes, value: int) -> dict[str, Any]:
        """The transaction of a call, pre-flighted (a revert raises a decoded ChainRevert before
        anything is signed) and priced.

        The first call of a shape (contract, function, data length, with value or not) is sized
        with ``eth_estimateGas``, the least gas it succeeds with; a later one is pre-flighted with
        one ``eth_call`` given the estimate of its shape: if that succeeds, the call needs no
        more than that estimate now, so it gets the margin an estimate of its own would give it.
        The estimate runs the call again and again to bisect its gas (anvil spent ~1.8 ms of CPU
        on one for submitTask, 0.3 ms on the call). A call that fails at the shape's estimate (a
        revert, or it needs more gas now) is estimated as the first one was, which raises the
        revert or sizes the shape anew."""
        request = {
            "from": self.address,
            "to": to,
            "data": HexBytes(data).to_0x_hex(),
            "value": hex(value),
        }
        shape = (to.lower(), bytes(data[:4]), len(data), value != 0)
        known = self._family.gas_estimates.get(shape)
        gas = None
        if known is not None:
            checked = {**request, "gas": hex(known)}
            answer, gas_price = self._with_gas_price(("eth_call", [checked, "latest"]))
            if not isinstance(answer, RpcError):
                gas = known
        if gas is None:
            # always with a block tag: Besu 25.6-25.7 estimated on "pending" without one, which
            # failed on QBFT chains
            estimate, gas_price = self._with_gas_price(("eth_estimateGas", [request, "latest"]))
            if isinstance(estimate, RpcError):
                raise self._chain_error(estimate)
            gas = to_int(estimate)
            estimates = self._family.gas_estimates
            if len(estimates) >= GAS_SHAPES_MAX:
                estimates.clear()
            estimates[shape] = gas
        return {
            "to": Web3.to_checksum_address(to),
            "data": HexBytes(data),
            "value": value,
            "gas": int(gas * GAS_MARGIN) + 10_000,
            "gasPrice": gas_price,
            "chainId": self.chain_id,
        }

    def _with_gas_price(self, call: tuple[str, list[Any]]) -> tuple[Any, int]:
        """The answer to ``call`` (an RpcError as the node gave it) and the gas price, asked in
        one batch (not asked on a chain whose base fee is zero: there it is zero)."""
        calls = [call]
        if not self._family.zero_base_fee():
            calls.append(("eth_gasPrice", []))
        try:
            answer, *priced = self._rpc.batch(calls)
        except RpcUnavailable as exc:
            raise ChainError(str(exc)) from exc
        gas_price = priced[0] if priced else "0x0"
        if isinstance(gas_price, RpcError):
            raise ChainError(f"the node gave no gas price: {gas_price}")
        return answer, to_int(gas_price)

    def deploy(self, abi: list[dict[str, Any]], bytecode: str, *args: Any) -> TxReceipt:
        """Deploy a contract and wait for its receipt (``contractAddress`` holds the address)."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        constructor = factory.constructor(*args)
        data = HexBytes(constructor.data_in_transaction)
        request = {"from": self.address, "data": data.to_0x_hex()}
        gas = self._request("eth_estimateGas", [request, "latest"])
        zero = self._family.zero_base_fee()
        tx: dict[str, Any] = {
            "data": data,
            "gas": int(to_int(gas) * GAS_MARGIN) + 10_000,
            "gasPrice": 0 if zero else to_int(self._request("eth_gasPrice", [])),
            "chainId": self.chain_id,
            "value": 0,
        }
        return self.transact_params(tx)

    def transact_params(self, tx: dict[str, Any]) -> TxReceipt:
        """Sign ``tx`` with the next local nonce, send it and wait for its receipt.

        Where the node has ``eth_sendRawTransactionSync`` (anvil does), the receipt comes in the
        answer to the send, without polling; and the nonce lock is held only while the request
        goes out, not while the transaction is mined, so the next one is already on its way
        (a node keeps a transaction whose nonce arrives early until the gap is filled). An
        answer that is not a receipt is judged by asking for the transaction: known to the node,
        it is waited for as usual; refused as "nonce too low", it is signed again with a nonce
        read from the node; refused otherwise, the nonce is read again and the error raised.
        """
        if not self._family.sync_send():
            return self.wait(self.send_raw_params(tx))
        for _ in range(NONCE_RETRIES):
            sent, answer = self._sign_and_write(tx)
            if answer is None:
                return self.wait(sent)
            try:
                return self._receipt(sent, answer())
            except (RpcError, RpcUnavailable) as exc:
                if self._known(sent.tx_hash):  # e.g. not mined within the node's own timeout
                    return self.wait(sent)
                with self._nonce() as slot:
                    slot.value = None  # resynchronise: this nonce may be a gap now
                if isinstance(exc, RpcError) and "nonce too low" in exc.message.lower():
                    continue
                raise ChainError(f"the node refused the transaction: {exc}") from exc
        raise ChainError(
            f"nonce of {self.address} kept moving; gave up after {NONCE_RETRIES} tries"
        )

    def _sign_and_write(
        self, tx: dict[str, Any]
    ) -> tuple[SentTransaction, Callable[[], Any] | None]:
        """Sign with the next nonce and write the synchronous send; the answer is read by the
        caller, after the nonce lock is released (None: the node took the transaction, but the
        connection failed, so there is no answer to read)."""
        with self._nonce() as slot:
            if slot.value is None:
                slot.value = self._pending_count()
            nonce = slot.value
            tx_hash, raw = sign(self.account, {**tx, "nonce": nonce})
            sent = SentTransaction(tx_hash, raw, time.time(), nonce)
            answer: Callable[[], Any] | None = None
            try:
                answer = self._rpc.start(SYNC_SEND, [sent.raw.to_0x_hex()])
            except RpcUnavailable as exc:
                slot.value = None
                if not self._known(sent.tx_hash):
                    raise ChainError(f"the node refused the transaction: {exc}") from exc
            slot.value = nonce + 1
            return sent, answer

    def send_raw_params(self, tx: dict[str, Any]) -> SentTransaction:
        """Sign ``tx`` with the next local nonce and broadcast it.

        The account may also sign elsewhere (another process, a relayed non-custodial
        transaction), so a "nonce too low" answer resynchronises the nonce from the node and
        signs again, a few times, before giving up. An answer lost on the way back (the node took
        the transaction, then the connection failed) is recognised by asking for the transaction,
        so it is never signed twice under two nonces.
        """
        with self._nonce() as slot:
            for _ in range(NONCE_RETRIES):
                if slot.value is None:
                    slot.value = self._pending_count()
                nonce = slot.value
                tx_hash, raw = sign(self.account, {**tx, "nonce": nonce})
                sent = SentTransaction(tx_hash, raw, time.time(), nonce)
                try:
                    self._send_within_window(sent)
                except (RpcError, OSError) as exc:
                    slot.value = None  # resynchronise from the node
                    if self._known(sent.tx_hash):  # it did arrive: the answer was lost
                        slot.value = nonce + 1
                        return sent
                    if isinstance(exc, RpcError) and "nonce too low" in exc.message.lower():
                        continue
                    raise ChainError(f"the node refused the transaction: {exc}") from exc
                slot.value = nonce + 1
                return sent
        raise ChainError(
            f"nonce of {self.address} kept moving; gave up after {NONCE_RETRIES} tries"
        )

    def _send_within_window(self, sent: SentTransaction) -> None:
        """``eth_sendRawTransaction``; refused because its nonce is too far ahead of the
        account's mined transactions (Besu's per-sender window), it is sent again each time that
        count moves, until the receipt timeout. The caller holds the account's nonce lock, so the
        account's later transactions queue behind this one instead of being refused too: the
        pipeline stays inside the node's window, whatever its size."""
        deadline = time.monotonic() + self.receipt_timeout_s
        while True:
            try:
                self._rpc.request("eth_sendRawTransaction", [sent.raw.to_0x_hex()])
                return
            except RpcError as exc:
                if TOO_DISTANT not in exc.message.lower() or time.monotonic() > deadline:
                    raise
            mined = self._mined_count()
            while self._mined_count() == mined and time.monotonic() < deadline:
                time.sleep(POLL_MAX_S)

    def wait(self, sent: SentTransaction) -> TxReceipt:
        """Wait for the receipt, broadcasting again if the node forgot the transaction."""
        deadline = time.monotonic() + self.receipt_timeout_s
        last_broadcast = time.monotonic()
        tx_hash = sent.tx_hash.to_0x_hex()
        delay = POLL_FIRST_S
        while True:
            raw = self._request("eth_getTransactionReceipt", [tx_hash])
            if raw is not None and raw.get("blockNumber") is not None:
                return self._receipt(sent, raw)
            now = time.monotonic()
            if now > deadline:
                raise ChainTimeout(f"transaction {tx_hash} not mined in {self.receipt_timeout_s}s")
            if now - last_broadcast > REBROADCAST_AFTER_S:
                if not self._known(sent.tx_hash):
                    logger.warning("transaction %s was dropped, broadcasting again", tx_hash)
                    try:
                        self._rpc.request("eth_sendRawTransaction", [sent.raw.to_0x_hex()])
                    except (RpcError, RpcUnavailable) as exc:
                        logger.info("rebroadcast of %s refused: %s", tx_hash, exc)
                elif sent.nonce is not None and sent.nonce > self._pending_count():
                    self._close_gap()  # a reorganisation took back transactions before it
                last_broadcast = now
            time.sleep(delay)
            delay = min(delay * POLL_GROWTH, POLL_MAX_S)

    def close_nonce_gaps(self) -> int:
        """Fill the nonce gap of every account of this connection whose book is ahead of its
        pending count on chain (a reorganisation took back its transactions) with empty
        transactions; how many were sent."""
        with self._family.lock:
            clients = list(self._family.clients.values())
        return sum(client._close_gap() for client in clients)

    def _close_gap(self) -> int:
        """Send a zero-value transaction to itself for each nonce between the account's pending
        count and its book's next nonce, without waiting for them; how many were sent."""
        with self._nonce() as slot:
            if slot.value is None:
                return 0
            pending = self._pending_count()
            if pending >= slot.value:
                return 0
            logger.warning(
                "%s: nonces %d..%d were taken back by the chain; filling them",
                self.address,
                pending,
                slot.value - 1,
            )
            zero = self._family.zero_base_fee()
            gas_price = 0 if zero else to_int(self._request("eth_gasPrice", []))
            for nonce in range(pending, slot.value):
                filler = {
                    "to": self.address,
                    "value": 0,
                    "gas": 21_000,
                    "gasPrice": gas_price,
                    "chainId": self.chain_id,
                    "nonce": nonce,
                }
                _, raw = sign(self.account, filler)
                try:
                    self._rpc.request("eth_sendRawTransaction", [raw.to_0x_hex()])
                except (RpcError, RpcUnavailable) as exc:  # e.g. taken meanwhile
                    logger.info("filler of nonce %d of %s refused: %s", nonce, self.address, exc)
            return slot.value - pending

    def mined(self, tx_hash: str) -> bool:
        """Whether the chain holds the transaction in a block."""
        receipt = self._request("eth_getTransactionReceipt", [tx_hash])
        return receipt is not None and receipt.get("blockNumber") is not None

    def _receipt(self, sent: SentTransaction, raw: dict[str, Any]) -> TxReceipt:
        """A mined transaction's receipt as web3 formats it; a revert raises ChainError."""
        observe_confirmation(sent.sent_at)
        receipt = format_receipt(raw)
        with self._gas_lock:
            self.gas_used += receipt["gasUsed"]
        if receipt["status"] != 1:
            raise ChainError(f"transaction {sent.tx_hash.to_0x_hex()} reverted on chain")
        return receipt

    def _pending_count(self) -> int:
        return to_int(self._request("eth_getTransactionCount", [self.address, "pending"]))

    def _mined_count(self) -> int:
        return to_int(self._request("eth_getTransactionCount", [self.address, "latest"]))

    def _known(self, tx_hash: HexBytes) -> bool:
        try:
            return self._rpc.request("eth_getTransactionByHash", [tx_hash.to_0x_hex()]) is not None
        except (RpcError, OSError):
            return False

    def _request(self, method: str, params: list[Any]) -> Any:
        """One request on the lean path; a revert raises a decoded ChainRevert, an unreachable
        node a ChainError."""
        try:
            return self._rpc.request(method, params)
        except RpcError as exc:
            raise self._chain_error(exc) from exc
        except RpcUnavailable as exc:
            raise ChainError(str(exc)) from exc

    def _chain_error(self, error: RpcError) -> ChainError:
        reverted, data = revert_data(error)
        if reverted:
            return self.errors.decode(data)
        return unreverted(str(error))

    def _decoded(self, action: Callable[[], Any]) -> Any:
        """Run a web3 call; a revert is raised as a decoded ChainRevert."""
        try:
            return action()
        except ContractLogicError as exc:
            data = exc.data if isinstance(exc.data, str) else None
            raise self.errors.decode(data) from exc
        except Web3RPCError as exc:
            raise unreverted(str(exc)) from exc


def sign(account: LocalAccount, tx: dict[str, Any]) -> tuple[HexBytes, HexBytes]:
    """The hash and raw bytes of ``tx`` signed by ``account``, as ``account.sign_transaction``
    gives them. A legacy transaction with a chain id (EIP-155: every one this client prices) is
    encoded and signed here, with libsecp256k1 (coincurve, eth-keys' own backend) and the key
    kept per account: eth-account checks and formats each field through several layers first,
    ~0.65 ms of CPU a transaction against ~0.15 ms. Any other shape takes eth-account's path."""
    if _is_legacy(tx):
        return _sign_legacy(account, tx)
    key = getattr(account, "_key_obj", None)
    if key is None or _sign_transaction_dict is None:
        signed = account.sign_transaction(tx)
        return HexBytes(signed.hash), HexBytes(signed.raw_transaction)
    *_, encoded = _sign_transaction_dict(key, tx)
    return HexBytes(keccak256(encoded)), HexBytes(encoded)


_LEGACY_FIELDS = frozenset({"nonce", "gasPrice", "gas", "to", "value", "data", "chainId"})
_SIGNING_KEYS: dict[bytes, PrivateKey] = {}  # an account's key as coincurve holds it


def _is_legacy(tx: dict[str, Any]) -> bool:
    """Whether ``tx`` is a legacy transaction with a chain id whose fields have the types this
    client gives them (ints, bytes data, a checksummed or absent ``to``)."""
    if not (tx.keys() <= _LEGACY_FIELDS and tx.keys() >= _LEGACY_FIELDS - {"to"}):
        return False
    numbers = (tx["nonce"], tx["gasPrice"], tx["gas"], tx["value"], tx["chainId"])
    if not all(type(number) is int and 0 <= number < 2**256 for number in numbers):
        return False
    to = tx.get("to")
    return isinstance(tx["data"], bytes) and (
        to is None or (isinstance(to, str) and Web3.is_checksum_address(to))
    )


def _sign_legacy(account: LocalAccount, tx: dict[str, Any]) -> tuple[HexBytes, HexBytes]:
    """EIP-155: the RLP list of the fields and (chain id, 0, 0) is hashed and signed; v is the
    recovery id + 35 + 2 x chain id. coincurve signs deterministically (RFC 6979) with a low s,
    as eth-keys does, so the bytes are eth-account's."""
    secret = bytes(account.key)
    signing_key = _SIGNING_KEYS.get(secret)
    if signing_key is None:
        signing_key = _SIGNING_KEYS.setdefault(secret, PrivateKey(secret))
    to = tx.get("to")
    fields: list[int | bytes] = [
        tx["nonce"],
        tx["gasPrice"],
        tx["gas"],
        bytes.fromhex(to[2:]) if to else b"",
        tx["value"],
        bytes(tx["data"]),
    ]
    chain_id: int = tx["chainId"]
    signature = signing_key.sign_recoverable(
        keccak256(rlp.encode([*fields, chain_id, 0, 0])), hasher=None
    )
    r, s, recovery = signature[:32], signature[32:64], signature[64]
    encoded = rlp.encode(
        [*fields, recovery + 35 + 2 * chain_id, int.from_bytes(r, "big"), int.from_bytes(s, "big")]
    )
    return HexBytes(keccak256(encoded)), HexBytes(encoded)


_RECEIPT_INTS = (
    "cumulativeGasUsed",
    "status",
    "gasUsed",
    "effectiveGasPrice",
    "type",
    "blobGasPrice",
    "blobGasUsed",
)


def format_receipt(raw: dict[str, Any]) -> TxReceipt:
    """A receipt as the node gave it, formatted as ``w3.eth.get_transaction_receipt`` formats
    it (web3's ``receipt_formatter``, then ``AttributeDict.recursive``): hex numbers as ints,
    hashes and data as HexBytes, addresses checksummed. Field by field here, with the
    addresses' checksums kept (a few contracts and accounts): web3's generic formatters took
    ~0.6 ms of CPU a submission's receipt."""
    receipt = {key: AttributeDict.recursive(value) for key, value in raw.items() if key != "logs"}
    _format_position(receipt, raw)
    receipt["transactionHash"] = _hash32(raw["transactionHash"])
    for key in _RECEIPT_INTS:
        if key in raw:
            receipt[key] = _int_if_hex(raw[key])
    for key in ("contractAddress", "from"):
        if raw.get(key) is not None:
            receipt[key] = _checksum(raw[key])
    if "to" in raw and is_address(raw["to"]):
        receipt["to"] = _checksum(raw["to"])
    if "logsBloom" in raw:
        bloom = HexBytes(raw["logsBloom"])
        if len(bloom) > 256:
            raise ValueError(f"a logs bloom of {len(bloom)} bytes")
        receipt["logsBloom"] = bloom
    if "logs" in raw:
        receipt["logs"] = [_format_log(log) for log in raw["logs"]]
    return cast(TxReceipt, AttributeDict(receipt))


def _format_log(raw: dict[str, Any]) -> AttributeDict[str, Any]:
    log = {key: AttributeDict.recursive(value) for key, value in raw.items()}
    _format_position(log, raw)
    if raw.get("transactionHash") is not None:
        log["transactionHash"] = _hash32(raw["transactionHash"])
    if "logIndex" in raw:
        log["logIndex"] = _int_if_hex(raw["logIndex"])
    if "address" in raw:
        log["address"] = _checksum(raw["address"])
    if "topics" in raw:
        log["topics"] = [_hash32(topic) for topic in raw["topics"]]
    if "data" in raw:
        log["data"] = HexBytes(raw["data"])
    return AttributeDict(log)


def _format_position(formatted: dict[str, Any], raw: dict[str, Any]) -> None:
    """The block hash, block number and transaction index, where the node gave them."""
    if raw.get("blockHash") is not None:
        formatted["blockHash"] = _hash32(raw["blockHash"])
    for key in ("blockNumber", "transactionIndex"):
        if raw.get(key) is not None:
            formatted[key] = _int_if_hex(raw[key])


def _hash32(value: Any) -> HexBytes:
    hashed = HexBytes(value)
    if len(hashed) != 32:
        raise ValueError(f"a hash of {len(hashed)} bytes, not 32: {value!r}")
    return hashed


def _int_if_hex(value: Any) -> Any:
    return int(value, 16) if isinstance(value, str) and is_hex(value) else value


@lru_cache(maxsize=4096)
def _checksum(address: str) -> ChecksumAddress:
    return to_checksum_address(address)


__all__ = [
    "ChainClient",
    "ChainError",
    "ChainRevert",
    "ChainTimeout",
    "LocalNonces",
    "NonceBook",
    "NonceSlot",
    "SentTransaction",
]
