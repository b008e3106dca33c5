from __future__ import annotations

import secrets

import pytest

from privledger.evm.merkle import (
    MerkleTree,
    ProofDocument,
    hash_pair,
    keccak256,
    leaf_hash,
    process_proof,
    verify,
)


def test_keccak_known_vector() -> None:
    # keccak256("") from the Ethereum yellow paper / every EVM implementation
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_leaf_is_double_hashed_abi_encoding() -> None:
    digest = bytes(range(32))
    assert leaf_hash(digest) == keccak256(keccak256(digest))
    with pytest.raises(ValueError, match="32 bytes"):
        leaf_hash(b"short")


def test_pair_hash_is_commutative() -> None:
    a, b = secrets.token_bytes(32), secrets.token_bytes(32)
    assert hash_pair(a, b) == hash_pair(b, a) == keccak256(min(a, b) + max(a, b))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 33, 100])
def test_every_leaf_proves_against_the_root(size: int) -> None:
    digests = [secrets.token_bytes(32) for _ in range(size)]
    tree = MerkleTree(digests)
    for index, digest in enumerate(digests):
        assert verify(tree.root, digest, tree.proof(index))


def test_single_leaf_root_is_the_leaf() -> None:
    digest = secrets.token_bytes(32)
    tree = MerkleTree([digest])
    assert tree.root == leaf_hash(digest)
    assert tree.proof(0) == []


def test_wrong_digest_or_tampered_proof_fails() -> None:
    digests = [secrets.token_bytes(32) for _ in range(10)]
    tree = MerkleTree(digests)
    proof = tree.proof(3)
    assert not verify(tree.root, digests[4], proof)
    tampered = [*proof[:-1], secrets.token_bytes(32)]
    assert not verify(tree.root, digests[3], tampered)


def test_inner_node_cannot_pass_as_leaf() -> None:
    digests = [secrets.token_bytes(32) for _ in range(4)]
    tree = MerkleTree(digests)
    inner = tree.levels[1][0]
    # presenting the inner node as a digest fails because leaves are double-hashed
    assert not verify(tree.root, inner, [tree.levels[1][1]])
    assert process_proof(inner, [tree.levels[1][1]]) == tree.root


def test_empty_tree_and_bad_index_are_refused() -> None:
    with pytest.raises(ValueError):
        MerkleTree([])
    with pytest.raises(IndexError):
        MerkleTree([secrets.token_bytes(32)]).proof(1)


def test_proof_document_round_trip_and_tamper_detection() -> None:
    digests = [secrets.token_bytes(32) for _ in range(6)]
    tree = MerkleTree(digests)
    document = ProofDocument(
        digest=digests[2],
        proof=tree.proof(2),
        root=tree.root,
        batch_id=1,
        chain_id=31337,
        contract="0x" + "11" * 20,
        tx_hash="0x" + "22" * 32,
        block_number=5,
    ).to_json()
    parsed = ProofDocument.from_json(document)
    assert parsed.verify_offline()
    document["digest"] = "0x" + secrets.token_bytes(32).hex()
    assert not ProofDocument.from_json(document).verify_offline()
    with pytest.raises(ValueError):
        ProofDocument.from_json({**document, "format": "other"})
    with pytest.raises(ValueError):
        ProofDocument.from_json({**document, "root": "0x1234"})
