"""Merkle trees over 32-byte digests, compatible with OpenZeppelin's MerkleProof.

Leaves follow OpenZeppelin's StandardMerkleTree convention for a single ``bytes32`` value,
``leaf = keccak256(keccak256(abi.encode(digest)))``, so an inner node (64 bytes hashed once) can
never be passed off as a leaf. Inner nodes hash the sorted pair,
``keccak256(min(a, b) || max(a, b))`` (OpenZeppelin ``Hashes.commutativeKeccak256``), which is why a
proof is just the list of siblings.
A node without a sibling at the end of a level moves up unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from privledger.evm.hashing import keccak256

DIGEST_SIZE = 32
PROOF_FORMAT = "privledger-merkle-proof/1"


def leaf_hash(digest: bytes) -> bytes:
    if len(digest) != DIGEST_SIZE:
        raise ValueError(f"a digest is {DIGEST_SIZE} bytes, got {len(digest)}")
    return keccak256(keccak256(digest))


def hash_pair(left: bytes, right: bytes) -> bytes:
    return keccak256(left + right) if left < right else keccak256(right + left)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a proof leads to from ``leaf`` (OpenZeppelin ``MerkleProof.processProof``)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def verify(root: bytes, digest: bytes, proof: Sequence[bytes]) -> bool:
    return process_proof(leaf_hash(digest), proof) == root


class MerkleTree:
    """A tree over ``digests`` in the given order; ``proof(i)`` proves the i-th digest."""

    def __init__(self, digests: Sequence[bytes]) -> None:
        if not digests:
            raise ValueError("a Merkle tree needs at least one digest")
        level = [leaf_hash(digest) for digest in digests]
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            pairs = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                pairs.append(level[-1])
            level = pairs
            self.levels.append(level)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def __len__(self) -> int:
        return len(self.levels[0])

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < len(self):
            raise IndexError(f"leaf index {index} outside 0..{len(self) - 1}")
        siblings = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                siblings.append(level[sibling])
            index //= 2
        return siblings


@dataclass(frozen=True)
class ProofDocument:
    """A self-contained inclusion proof: everything needed to check it offline or on chain."""

    digest: bytes
    proof: list[bytes]
    root: bytes
    batch_id: int
    chain_id: int
    contract: str
    tx_hash: str
    block_number: int

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PROOF_FORMAT,
            "digest": "0x" + self.digest.hex(),
            "leaf": "0x" + leaf_hash(self.digest).hex(),
            "proof": ["0x" + sibling.hex() for sibling in self.proof],
            "root": "0x" + self.root.hex(),
            "batchId": self.batch_id,
            "chainId": self.chain_id,
            "contract": self.contract,
            "txHash": self.tx_hash,
            "blockNumber": self.block_number,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ProofDocument:
        if document.get("format") != PROOF_FORMAT:
            raise ValueError(f"not a {PROOF_FORMAT} document")
        try:
            return cls(
                digest=_hex32(document["digest"]),
                proof=[_hex32(sibling) for sibling in document["proof"]],
                root=_hex32(document["root"]),
                batch_id=int(document["batchId"]),
                chain_id=int(document["chainId"]),
                contract=str(document["contract"]),
                tx_hash=str(document["txHash"]),
                block_number=int(document["blockNumber"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed proof document: {exc}") from exc

    def verify_offline(self) -> bool:
        """True when the proof leads from the digest to the stated root."""
        return verify(self.root, self.digest, self.proof)


def _hex32(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"expected a 0x-prefixed 32-byte hex string, got {type(value).__name__}")
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    if len(raw) != DIGEST_SIZE:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw
