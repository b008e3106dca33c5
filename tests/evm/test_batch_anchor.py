from __future__ import annotations

import secrets

from privledger.evm.merkle import MerkleTree, ProofDocument

from .conftest import Consortium, reverts

LABEL = b"audit-log".ljust(32, b"\0")


def test_python_proofs_verify_in_the_contract(consortium: Consortium) -> None:
    operator = consortium.bank_a.ledger
    digests = [secrets.token_bytes(32) for _ in range(37)]
    tree = MerkleTree(digests)
    batch_id, receipt = operator.anchors.anchor_batch(tree.root, len(digests), LABEL)
    batch = operator.anchors.get_batch(batch_id)
    assert (batch.root, batch.leaf_count, batch.org_id, batch.label) == (
        tree.root,
        37,
        consortium.bank_a.org_id,
        LABEL,
    )
    assert batch.block_number == receipt["blockNumber"]
    for index in (0, 1, 17, 35, 36):
        assert operator.anchors.verify(batch_id, digests[index], tree.proof(index))
    assert not operator.anchors.verify(batch_id, digests[3], tree.proof(4))
    assert not operator.anchors.verify(batch_id, secrets.token_bytes(32), tree.proof(0))
    # the contract's leaf hashing is the one the Python tree uses
    leaf = operator.anchors.contract.functions.leafHash(digests[0]).call()
    assert bytes(leaf) == tree.levels[0][0]


def test_proof_document_checks_offline_and_on_chain(consortium: Consortium) -> None:
    operator = consortium.bank_b.ledger
    digests = [secrets.token_bytes(32) for _ in range(5)]
    tree = MerkleTree(digests)
    batch_id, receipt = operator.anchors.anchor_batch(tree.root, 5, LABEL)
    document = ProofDocument(
        digest=digests[2],
        proof=tree.proof(2),
        root=tree.root,
        batch_id=batch_id,
        chain_id=operator.client.chain_id,
        contract=operator.anchors.address,
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        block_number=receipt["blockNumber"],
    ).to_json()
    parsed = ProofDocument.from_json(document)
    assert parsed.verify_offline()
    assert consortium.admin.anchors.verify(parsed.batch_id, parsed.digest, parsed.proof)
    assert consortium.admin.anchors.get_batch(parsed.batch_id).root == parsed.root


def test_anchor_refusals(consortium: Consortium) -> None:
    with reverts("BatchAnchorUnauthorized"):
        consortium.admin.anchors.anchor_batch(secrets.token_bytes(32), 1, LABEL)
    with reverts("BatchAnchorEmptyRoot"):
        consortium.bank_a.ledger.anchors.anchor_batch(bytes(32), 1, LABEL)
    with reverts("BatchAnchorEmptyBatch"):
        consortium.bank_a.ledger.anchors.anchor_batch(secrets.token_bytes(32), 0, LABEL)
    with reverts("BatchAnchorUnknownBatch"):
        consortium.bank_a.ledger.anchors.get_batch(42)
