"""Issue 19, item 2: what a feature owner of vertical SecureBoost receives, message by message.

Every message the feature owner receives on its channel is recorded and parsed. The stated
leakage (protocols/fl/gbdt.py, docs/security-model.md) allows: the agreed parameters and the
public key, the sampled row indices, one Paillier ciphertext per sampled row and tree, the node
of every row per level (instance spaces), the ids of its own chosen splits, the trees' shapes and
the kept tree count. The test checks that nothing else arrives -- no float but the agreed
parameters, no byte beyond the stated fields -- and runs a label-correlation attack on the
ciphertexts, which first succeeds on the plaintexts they carry (so the attack is not blind).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from privledger.protocols.channel import Channel, Side, channel_pair
from privledger.protocols.fl.gbdt import (
    GbdtConfig,
    GbdtJointScorer,
    LabelHolderModel,
    OwnerModel,
    train_feature_owner,
    train_label_holder,
)
from privledger.protocols.fl.gbdt_paillier import GradientPacking
from privledger.protocols.fl.gbdt_tree import Split as TreeSplit
from privledger.protocols.fl.gbdt_tree import TreeShape
from privledger.protocols.mpc.ring import decode_fixed
from privledger.protocols.mpc.sharing import Party
from tests.protocols.fl.conftest import Split

pytestmark = [pytest.mark.privacy, pytest.mark.slow]

CONFIG = GbdtConfig(trees=3, max_depth=3, learning_rate=0.3, key_bits=1024, seed=11)
ALLOWED_KEYS = {
    "setup": {"type", "protocol", "params", "rows", "valid_rows", "n", "h_s"},
    "tree": {"type", "sampled"},
    "level": {"type", "nodes"},
    "splits": {"type", "nodes"},
    "tree_done": {"type", "shape"},
    "finish": {"type", "trees"},
}


class RecordingChannel(Channel):
    """A channel end that keeps a copy of every message it receives."""

    def __init__(self, inner: Channel, side: Side) -> None:
        super().__init__(side)
        self.inner = inner
        self.received: list[bytes] = []

    def close(self) -> None:
        self.inner.close()

    def _send_raw(self, payload: bytes) -> None:
        self.inner.send(payload)

    def _recv_raw(self, timeout: float | None) -> bytes:
        payload = self.inner.recv(timeout)
        self.received.append(payload)
        return payload


def _parse(message: bytes) -> tuple[dict[str, Any], bytes]:
    size = int.from_bytes(message[:4], "big")
    return json.loads(message[4 : 4 + size]), message[4 + size :]


def _only_integers(value: object) -> bool:
    if isinstance(value, dict):
        return all(_only_integers(v) for v in value.values())
    if isinstance(value, list):
        return all(_only_integers(v) for v in value)
    return isinstance(value, int | str) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def owner_view(breast_cancer: Split) -> list[bytes]:
    holder_end, owner_end = channel_pair()
    recording = RecordingChannel(owner_end, "b")
    x = breast_cancer.x_train
    thread = threading.Thread(
        target=train_feature_owner, args=(recording, x[:, 12:]), kwargs={"config": CONFIG}
    )
    thread.start()
    train_label_holder([holder_end], x[:, :12], breast_cancer.y_train, config=CONFIG)
    thread.join(timeout=120)
    return recording.received


def test_only_the_stated_fields_reach_a_feature_owner(
    breast_cancer: Split, owner_view: list[bytes]
) -> None:
    rows = breast_cancer.y_train.size
    kinds = []
    for message in owner_view:
        header, body = _parse(message)
        kind = header["type"]
        kinds.append(kind)
        assert set(header) == ALLOWED_KEYS[kind], kind
        agreed = {k: v for k, v in header.items() if k != "params"}
        assert _only_integers(agreed), f"a non-integer value in a {kind} message: {agreed}"
        if kind == "setup":
            assert header["params"] == CONFIG.agreed() and body == b""
            width = ((int(header["n"], 16) ** 2).bit_length() + 7) // 8
        elif kind == "tree":  # sampled indices, then exactly one ciphertext per sampled row
            assert len(body) == header["sampled"] * (4 + width)
        elif kind == "level":  # the node of every row, nothing else
            positions = np.frombuffer(body, "<i4")
            assert positions.size == rows and positions.min() >= -1
        else:
            assert body == b"", kind
    assert kinds[0] == "setup" and kinds[-1] == "finish"
    assert kinds.count("tree") == CONFIG.trees


def _ciphertexts(owner_view: list[bytes]) -> tuple[list[int], np.ndarray, int]:
    """The ciphertexts of the first tree (one per sampled row), the rows, and the modulus."""
    modulus = 0
    for message in owner_view:
        header, body = _parse(message)
        if header["type"] == "setup":
            modulus = int(header["n"], 16)
        if header["type"] == "tree":
            count = header["sampled"]
            rows = np.frombuffer(body[: 4 * count], "<u4")
            width = (len(body) - 4 * count) // count
            data = body[4 * count :]
            ciphers = [
                int.from_bytes(data[k * width : (k + 1) * width], "big") for k in range(count)
            ]
            return ciphers, rows, modulus
    raise AssertionError("no tree message")


def _label_attack(values: list[int], labels: np.ndarray) -> float:
    """The best |AUC - 0.5| of simple statistics of the values (low word, size, top word,
    residue)."""
    features = [
        [v & 0xFFFFFFFF for v in values],
        [v.bit_length() for v in values],
        [v >> max(v.bit_length() - 32, 0) for v in values],
        [v % (2**61 - 1) for v in values],
    ]
    return max(abs(roc_auc_score(labels, np.asarray(f, dtype=float)) - 0.5) for f in features)


def test_ciphertexts_carry_nothing_an_attack_can_correlate_with_the_labels(
    breast_cancer: Split, owner_view: list[bytes]
) -> None:
    ciphers, rows, modulus = _ciphertexts(owner_view)
    labels = breast_cancer.y_train[rows]
    assert all(0 < c < modulus**2 for c in ciphers) and len(set(ciphers)) == len(ciphers)
    # the attack works on what the ciphertexts hide: the first tree's packed g = p - y
    prior = float(breast_cancer.y_train.mean())
    packing = GradientPacking.for_rows(breast_cancer.y_train.size, CONFIG.frac_bits)
    hess = np.full(labels.size, prior * (1 - prior))
    plaintexts = packing.encode(prior - labels, hess)
    assert _label_attack(plaintexts, labels) > 0.45
    # and finds nothing in the ciphertexts (398 rows: one sd of a null AUC is ~0.03)
    assert _label_attack(ciphers, labels) < 0.12


def test_joint_scoring_sends_a_feature_owner_nothing_but_the_agreement() -> None:
    """Joint prediction with a gbdt model (:class:`GbdtJointScorer`): the label holder turns
    the owners' leaf masks into scores it holds as its share; towards a feature owner it sends
    only the parameters' digest, so what the owner learns is :mod:`.joint`'s masked protocol
    (tests/privacy/test_vertical_model.py), never a score. One tree, split by the owner."""
    shape = TreeShape((0,), (1, 2))
    owner = OwnerModel((shape,), ({0: TreeSplit(0, 0.0)},), 1)
    holder = LabelHolderModel(
        OwnerModel((shape,), ({},), 0),
        ({0: 1},),
        ({0: 2.0},),
        (np.array([-1.0, 1.5]),),
        0.25,
        (0, 1),
    )
    features = np.array([[-2.0], [0.5], [-0.1], [3.0]])
    holder_end, owner_end = channel_pair()
    recording = RecordingChannel(owner_end, "b")
    parties = [Party(0, {1: holder_end}), Party(1, {0: recording})]
    shares: list[Any] = [None, None]

    def score(index: int, part: OwnerModel | LabelHolderModel, own: np.ndarray) -> None:
        shares[index] = GbdtJointScorer(part, (0, 1), 0, 16).shared_scores(parties[index], own)

    thread = threading.Thread(target=score, args=(1, owner, features))
    thread.start()
    score(0, holder, np.zeros((4, 0)))
    thread.join(timeout=30)
    assert [len(message) for message in recording.received] == [32]  # the agreement's digest
    assert not shares[1].any()  # the owner's share of every score is zero
    np.testing.assert_allclose(decode_fixed(shares[0], 16), [-0.75, 1.75, -0.75, 1.75])
