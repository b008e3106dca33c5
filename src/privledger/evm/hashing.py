"""keccak256, the one way privledger computes it (Ethereum's hash, not SHA3-256).

Everything that is compared with a hash computed on chain (spec hashes, result digests, schema
hashes, commitments, Merkle nodes, log digests) goes through :func:`keccak256`. It is eth-hash's
keccak, the same function web3.py and eth-account use.
"""

from __future__ import annotations

from eth_hash.auto import keccak as _keccak


def keccak256(data: bytes) -> bytes:
    """The 32-byte keccak256 of ``data``."""
    return _keccak(data)
