"""Vertical GBDT's contribution measure that a feature owner counts itself (protocols/fl/gbdt.py):
its splits and all the splits of every tree grown, equal to LightGBM's "split" importance of the
exported model per party (no early stopping: every tree grown is kept), and counting the trees
that early stopping drops; and a feature owner holding the label holder to the trees it saw grow:
no fewer trees kept than early stopping allows, no split at a node never opened to it (1024-bit
test keys, small trees)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import pytest

from privledger.protocols.channel import Channel, ChannelError
from privledger.protocols.fl.gbdt import (
    GbdtConfig,
    GbdtError,
    OwnerModel,
    SplitTally,
    export_feature_owner,
    export_label_holder,
    train_feature_owner,
    train_label_holder,
)
from tests.protocols.fl.conftest import Split
from tests.protocols.fl.test_gbdt import run_parties

pytestmark = pytest.mark.slow

BLOCKS = (slice(0, 10), slice(10, 20), slice(20, 30))


def test_each_party_counts_its_splits_as_lightgbm_does(breast_cancer: Split) -> None:
    config = GbdtConfig(trees=3, max_depth=2, learning_rate=0.3, key_bits=1024, seed=11)
    train = [breast_cancer.x_train[:, b] for b in BLOCKS]
    names = [[f"p{k}c{c}" for c in range(10)] for k in range(3)]

    def holder(channels: list[Channel]) -> tuple[list[int], str]:
        model = train_label_holder(channels, train[0], breast_cancer.y_train, config=config)
        merged = export_label_holder(channels, model, names=names[0], parties=["a", "b", "c"])
        return model.party_splits(), merged.to_lightgbm()

    def owner(k: int) -> Callable[[Channel], SplitTally]:
        def run(channel: Channel) -> SplitTally:
            tally = SplitTally()
            model = train_feature_owner(channel, train[k], config=config, tally=tally)
            export_feature_owner(channel, model, names=names[k])
            assert tally.shapes == list(model.shapes)
            return tally

        return run

    (counts, text), tallies = run_parties(holder, [owner(1), owner(2)])
    assert sum(counts) > 0 and all(count > 0 for count in counts[1:])
    for k, tally in enumerate(tallies, start=1):
        assert (tally.own_splits, tally.total_splits) == (counts[k], sum(counts))
    assert tallies[0].digest() == tallies[1].digest()
    importance = lgb.Booster(model_str=text).feature_importance(importance_type="split")
    assert [int(importance[b].sum()) for b in BLOCKS] == counts


def test_the_trees_early_stopping_drops_count_too(breast_cancer: Split) -> None:
    config = GbdtConfig(
        trees=6, max_depth=2, learning_rate=1.0, key_bits=1024, early_stopping_rounds=1, seed=5
    )
    x, y = breast_cancer.x_train, breast_cancer.y_train
    fit, held = slice(0, 300), slice(300, None)
    tally = SplitTally()

    def holder(channels: list[Channel]) -> list[int]:
        valid = (x[held, :12], y[held])
        return train_label_holder(
            channels, x[fit, :12], y[fit], config=config, valid=valid
        ).party_splits()

    def owner(channel: Channel) -> OwnerModel:
        return train_feature_owner(
            channel, x[fit, 12:], config=config, valid_features=x[held, 12:], tally=tally
        )

    kept_counts, (model,) = run_parties(holder, [owner])
    assert len(model.shapes) < len(tally.shapes)  # lr 1.0 overfits: it stops early
    assert tally.shapes[: len(model.shapes)] == list(model.shapes)
    assert tally.total_splits > sum(kept_counts)
    assert tally.own_splits >= kept_counts[1] == sum(len(s) for s in model.splits)


class Rewriting(Channel):
    """The label holder's end of a channel, rewriting the headers of one kind of message it
    sends: a label holder that lies to a feature owner about the model."""

    def __init__(self, inner: Channel, kind: str, change: Callable[[dict[str, Any]], None]):
        super().__init__(inner.side)
        self.inner, self.kind, self.change = inner, kind, change

    def close(self) -> None:
        self.inner.close()

    def _send_raw(self, payload: bytes) -> None:
        size = int.from_bytes(payload[:4], "big")
        header = json.loads(payload[4 : 4 + size])
        if header["type"] == self.kind:
            self.change(header)
            text = json.dumps(header).encode()
            payload = len(text).to_bytes(4, "big") + text + payload[4 + size :]
        self.inner.send(payload)

    def _recv_raw(self, timeout: float | None) -> bytes:
        return self.inner.recv(timeout)


def _fewer_trees(header: dict[str, Any]) -> None:
    header["trees"] -= 1


def _an_unopened_split(header: dict[str, Any]) -> None:
    # depth 1: only the root was opened; node 1 splits in the lie
    header["shape"] = {"internal": [0, 1], "leaves": [2, 3, 4]}


@pytest.mark.parametrize(
    ("kind", "change", "refusal"),
    [
        ("finish", _fewer_trees, "kept 1 of 2 trees grown"),
        ("tree_done", _an_unopened_split, "never opened"),
    ],
)
def test_a_feature_owner_refuses_a_model_it_did_not_see_grow(
    breast_cancer: Split, kind: str, change: Callable[[dict[str, Any]], None], refusal: str
) -> None:
    config = GbdtConfig(trees=2, max_depth=1, key_bits=1024, seed=3)  # no early stopping
    x, y = breast_cancer.x_train, breast_cancer.y_train

    def holder(channels: list[Channel]) -> None:
        lying = [Rewriting(channel, kind, change) for channel in channels]
        # the owner hangs up on the lie: the liar's next send or receive meets a closed channel,
        # sometimes before the owner's refusal is raised, so the refusal is what is checked
        with contextlib.suppress(ChannelError):
            train_label_holder(lying, x[:, :12], y, config=config)

    def owner(channel: Channel) -> OwnerModel:
        return train_feature_owner(channel, x[:, 12:], config=config)

    with pytest.raises(GbdtError, match=refusal):
        run_parties(holder, [owner])
