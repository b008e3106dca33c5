"""Vertical GBDT settled by contribution against a lying label holder (issue 19, item 4).

Mallory holds labels for customers of the telecom and bank-a, whose grants price their columns by
``contribution``: each feature owner is paid its aligned rows times its own share of the splits
of every tree grown, as it counts them itself. Mallory's node (tests/security/modified_node.py)
lies two ways. ``gbdt-lies``: it reports every split's gain as its own -- a report settlement
never reads -- and tells each feature owner the number of trees kept (as early stopping might)
that lowers that owner's share of the splits most; had the owners counted the trees kept, the lie
would have lowered a share, but they count every tree grown. ``gbdt-split-brain``: it shows the
telecom one more split of its own per tree than there is (a leaf opened to the telecom alone);
the feature owners compare the trees' shapes they were sent, find them different, and each
anchors all its aligned rows. Either way the fee is split by what the feature owners anchored,
to the wei, as the settlement record says."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from privledger.evm.contracts import FailureReason, TaskStatus
from tests.e2e.test_vertical_gbdt import paid_by_own_splits, settled_by_units
from tests.e2e.test_vertical_model import _register, _result, _write
from tests.e2e.test_walking_path import wait_status

from .malicious import Mallory, grant, wait_closed
from .test_requester_attacks import _failed_for

pytestmark = pytest.mark.security

PRICE = 10**12
COLUMNS = {"telecom": ["f0", "f1"], "bank-a": ["g0", "g1"]}


def _columns(mallory: Mallory, ids: list[str], x: np.ndarray) -> dict[str, str]:
    """The telecom's and bank-a's columns of the customers, granted to mallory priced by
    contribution: their dataset ids."""
    running, datasets = mallory.running, {}
    for k, (org, names) in enumerate(COLUMNS.items()):
        rows = [
            [i, *(repr(float(v)) for v in row)]
            for i, row in zip(ids, x[:, 2 * k : 2 * k + 2], strict=True)
        ]
        path = _write(
            running.data_dir / f"gbl-{org}-{secrets.token_hex(3)}.csv", ["id", *names], rows
        )
        datasets[org] = _register(running, org, path, PRICE)
        terms = {
            "protocols": ["vertical-gbdt"],
            "columns": {"id": ["join"], **{name: ["aggregate"] for name in names}},
            "price": {"unit": "contribution", "wei": PRICE},
        }
        grant(running, org, datasets[org], mallory.org_id, terms=terms)
    return datasets


def _train(mallory: Mallory, attack: str, switch: str, gbdt: dict[str, Any]) -> Trained:
    """Mallory's vertical-gbdt task on its labels and both feature owners' columns, its node
    attacking (``switch`` in the attack's file), settled: what each party keeps of it."""
    running = mallory.running
    rng = np.random.default_rng(41)
    x = rng.normal(size=(150, 4))
    # both feature owners' columns matter, in varying parts from tree to tree
    y = (x[:, 0] + 0.7 * x[:, 2] + 0.5 * rng.normal(size=150) > 0).astype(int)
    # the ids (so the validation split they choose) are the attack's: one training each time
    tag = hashlib.sha256(attack.encode()).hexdigest()[:6]
    ids = [f"+4477{tag}{i:04d}" for i in range(len(y))]
    datasets = _columns(mallory, ids, x)
    labels = mallory.register(["id", "label"], [[k, str(v)] for k, v in zip(ids, y, strict=True)])
    inputs: list[dict[str, Any]] = [
        {"dataset": labels, "column": "id", "valueColumn": "label"},
        *({"dataset": datasets[org], "column": "id", "features": COLUMNS[org]} for org in COLUMNS),
    ]
    body = {"kind": "fl", "protocol": "vertical-gbdt", "inputs": inputs, "gbdt": gbdt}
    (mallory.attacks / attack).write_text(switch)
    with mallory.attacking(attack):
        response = mallory.submit(body)
        assert response.status_code == 201, response.text
        task_id = int(response.json()["taskId"])
        assert wait_closed(running, task_id, timeout_s=300).status is TaskStatus.SETTLED
    with running.client("telecom", "operator") as client:
        task = wait_status(client, task_id, {"settled"})
    held = json.loads(mallory.result(task_id).json()["items"][0])
    parts = {org: json.loads(_result(running, org, task_id)[0]) for org in COLUMNS}
    return Trained(task, inputs, held, parts)


@dataclass(frozen=True)
class Trained:
    task: dict[str, Any]  # as the telecom's node shows it, settled
    inputs: list[dict[str, Any]]
    held: dict[str, Any]  # mallory's result
    parts: dict[str, dict[str, Any]]  # each feature owner's result


def _orgs(mallory: Mallory) -> list[int]:
    return [mallory.org_id, *(mallory.running.org_ids[org] for org in COLUMNS)]


def test_a_label_holder_that_lies_about_the_trees_kept_pays_by_the_owners_count(
    mallory: Mallory,
) -> None:
    # up to three trees fewer is a lie early stopping allows; with six trees of depth 2 some count
    # of trees kept lowers a share (three trees of depth 3 gave every count the same share in
    # about one validation split of three)
    rounds = 3
    params = {"trees": 6, "depth": 2, "learning_rate": 0.3, "min_child_samples": 10}
    trained = _train(mallory, "gbdt-lies", str(rounds), params | {"early_stopping_rounds": rounds})
    held, parts = trained.held, trained.parts
    _, telecom, bank_a = _orgs(mallory)

    # the lies: every gain mallory's, and a feature owner told of fewer trees than mallory kept,
    # in which its share of the splits is lower than in all the trees grown
    assert held["contributions"][str(telecom)] == held["contributions"][str(bank_a)] == 0.0
    told = {org: part["model"]["trees"] for org, part in parts.items()}
    lied = [org for org in COLUMNS if len(told[org]) < held["trees"]]
    assert lied, "mallory found no count of trees that lowers a share"
    for org in lied:
        own = sum(len(tree["splits"]) for tree in told[org])
        total = sum(len(tree["shape"]["internal"]) for tree in told[org])
        assert own / total < parts[org]["splits"]["own"] / parts[org]["splits"]["total"]
    # each feature owner counted every tree grown, the same trees at both (mallory holds no
    # column: their splits are all the splits), and anchored its rows by that count
    counts = [part["splits"] for part in parts.values()]
    assert counts[0]["total"] == counts[1]["total"] == counts[0]["own"] + counts[1]["own"]
    assert all(part["shapes_agree"] for part in parts.values())
    units = settled_by_units(mallory.running, trained.task, _orgs(mallory), trained.inputs)
    assert units == {
        telecom: paid_by_own_splits(parts["telecom"]),
        bank_a: paid_by_own_splits(parts["bank-a"]),
    }


def test_a_label_holder_that_shows_the_owners_different_trees_pays_every_aligned_row(
    mallory: Mallory,
) -> None:
    _, telecom, bank_a = _orgs(mallory)
    params = {"trees": 2, "depth": 2, "learning_rate": 0.3, "min_child_samples": 10}
    trained = _train(mallory, "gbdt-split-brain", str(telecom), params)
    parts = trained.parts

    # the telecom was shown one more split of mallory's per tree than bank-a: a lower share
    told, seen = parts["telecom"]["splits"], parts["bank-a"]["splits"]
    assert told["total"] == seen["total"] + 2 and told["own"] + seen["own"] == seen["total"]
    assert told["own"] / told["total"] < told["own"] / seen["total"]
    # the two feature owners compared the trees' shapes, found them different, and each
    # anchored all its aligned rows
    for part in parts.values():
        assert part["paid_by"] == "contribution" and part["shapes_agree"] is False
        assert part["units"] == part["aligned"] == 150
    units = settled_by_units(mallory.running, trained.task, _orgs(mallory), trained.inputs)
    assert units == {telecom: 150, bank_a: 150}


def test_a_split_may_not_single_out_fewer_rows_than_a_feature_owner_releases(
    mallory: Mallory,
) -> None:
    """The label holder chose min_child_samples: at 1, every split it picked could tell it on
    which side of a feature owner's threshold one customer falls, below the level-2 policy's
    group of 5 rows. Each feature owner refuses such a task before it aligns a row."""
    rng = np.random.default_rng(7)
    ids = [f"+4478{secrets.token_hex(2)}{i:04d}" for i in range(60)]
    datasets = _columns(mallory, ids, rng.normal(size=(60, 4)))
    labels = mallory.register(["id", "label"], [[k, str(i % 2)] for i, k in enumerate(ids)])
    inputs: list[dict[str, Any]] = [
        {"dataset": labels, "column": "id", "valueColumn": "label"},
        *({"dataset": datasets[org], "column": "id", "features": COLUMNS[org]} for org in COLUMNS),
    ]
    gbdt = {"trees": 2, "depth": 2, "min_child_samples": 1}
    before = mallory.balance()
    response = mallory.submit(
        {"kind": "fl", "protocol": "vertical-gbdt", "inputs": inputs, "gbdt": gbdt}
    )
    assert response.status_code == 201, response.text
    _failed_for(
        mallory,
        int(response.json()["taskId"]),
        FailureReason.POLICY_VIOLATION,
        before,
        providers=tuple(COLUMNS),
    )
