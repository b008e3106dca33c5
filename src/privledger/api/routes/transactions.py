"""Non-custodial signing: a user signs a grant, revocation or approval elsewhere; the node checks
and broadcasts it."""

from __future__ import annotations

import rlp
from eth_account import Account
from eth_utils.abi import function_abi_to_4byte_selector
from fastapi import APIRouter
from hexbytes import HexBytes
from web3.exceptions import Web3RPCError

from privledger.api.deps import DataOwner, NodeDep
from privledger.api.errors import ApiError
from privledger.api.schemas import RawTransactionIn, TxOut
from privledger.evm.client import SentTransaction
from privledger.node.context import NodeContext

router = APIRouter(prefix="/transactions", tags=["transactions"])

# What a data owner may send through this node: these functions of the grant registry, their
# selectors taken from the deployed contract's ABI (a signature written out here went stale when
# the registry's terms gained a field)
RELAYED = ("grant", "revoke", "approve", "reject")


def _relayed_selectors(node: NodeContext) -> set[bytes]:
    return {
        function_abi_to_4byte_selector(entry)
        for entry in node.ledger.grants.contract.abi
        if entry.get("type") == "function" and entry.get("name") in RELAYED
    }


def _target_and_data(raw: bytes) -> tuple[bytes, bytes]:
    """The ``to`` and ``data`` fields of a legacy or EIP-1559 / EIP-2930 transaction."""
    try:
        if raw[0] >= 0xC0:  # legacy: [nonce, gasPrice, gas, to, value, data, v, r, s]
            fields = rlp.decode(raw)
            return fields[3], fields[5]
        if raw[0] == 0x02:  # [chainId, nonce, tip, maxFee, gas, to, value, data, ...]
            fields = rlp.decode(raw[1:])
            return fields[5], fields[7]
        if raw[0] == 0x01:  # [chainId, nonce, gasPrice, gas, to, value, data, ...]
            fields = rlp.decode(raw[1:])
            return fields[4], fields[6]
    except (rlp.DecodingError, IndexError) as exc:
        raise ApiError(400, "invalid_transaction", f"not an RLP transaction: {exc}") from exc
    raise ApiError(400, "invalid_transaction", f"unsupported transaction type 0x{raw[0]:02x}")


@router.post("", response_model=TxOut, status_code=201)
def broadcast(body: RawTransactionIn, caller: DataOwner, node: NodeDep) -> TxOut:
    """Broadcast a transaction the caller signed: it must come from the caller's account and call a
    grant, revoke, approve or reject function of the ledger."""
    raw = bytes(HexBytes(body.raw_transaction))
    if not raw:
        raise ApiError(400, "invalid_transaction", "empty transaction")
    target, data = _target_and_data(raw)
    try:
        sender = Account.recover_transaction(raw)
    except Exception as exc:  # eth-account raises several types for bad signatures
        raise ApiError(400, "invalid_transaction", f"cannot recover the signer: {exc}") from exc
    if sender.lower() != caller.user.address.lower():
        raise ApiError(403, "forbidden", f"signed by {sender}, not by the caller's account")
    registry = node.ledger.deployment.addresses["GrantRegistry"][2:].lower()
    if target.hex().lower() != registry or bytes(data[:4]) not in _relayed_selectors(node):
        raise ApiError(403, "forbidden", "only grant, revoke, approve and reject may be relayed")
    node.ledger.client.preflight_raw(sender, "0x" + target.hex(), bytes(data))
    receipt = node.ledger.client.wait(
        SentTransaction(HexBytes(_broadcast(node, raw)), HexBytes(raw), 0.0)
    )
    return TxOut(
        tx_hash=receipt["transactionHash"].to_0x_hex(), block_number=receipt["blockNumber"]
    )


def _broadcast(node: NodeDep, raw: bytes) -> bytes:
    try:
        return bytes(node.ledger.client.w3.eth.send_raw_transaction(raw))
    except Web3RPCError as exc:
        raise ApiError(409, "rejected_by_chain", str(exc)) from exc
