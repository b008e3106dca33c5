"""Vertical GBDT settled by contribution against a lying label holder (issue 19, item 4).

Mallory holds labels for customers of the telecom and bank-a, whose grants price their columns by
``contribution``: each feature owner is paid its aligned rows times its own share of the splits
of every tree grown, as it counts them itself. Mallory's node (``gbdt-lies``,
tests/security/modified_node.py) reports every split's gain as its own -- a report settlement
never reads -- and tells each feature owner the number of trees kept (as early stopping might)
that lowers that owner's share of the splits most. Had the feature owners counted the trees kept,
the lie would have lowered a share; they count every tree grown, and are paid by that count to
the wei, as the settlement record says."""

from __future__ import annotations

import json
import secrets
from typing import Any

import numpy as np
import pytest

from privledger.evm.contracts import TaskStatus
from tests.e2e.test_vertical_gbdt import paid_by_own_splits, settled_by_units
from tests.e2e.test_vertical_model import _register, _result, _write
from tests.e2e.test_walking_path import wait_status

from .malicious import Mallory, grant, wait_closed

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


def test_a_label_holder_that_lies_about_the_model_pays_by_the_owners_count(
    mallory: Mallory,
) -> None:
    running = mallory.running
    rng = np.random.default_rng(41)
    x = rng.normal(size=(150, 4))
    # both feature owners' columns matter, in varying parts from tree to tree
    y = (x[:, 0] + 0.7 * x[:, 2] + 0.5 * rng.normal(size=150) > 0).astype(int)
    tag = secrets.token_hex(3)
    ids = [f"+4477{tag}{i:04d}" for i in range(len(y))]
    datasets = _columns(mallory, ids, x)
    labels = mallory.register(["id", "label"], [[k, str(v)] for k, v in zip(ids, y, strict=True)])
    inputs: list[dict[str, Any]] = [
        {"dataset": labels, "column": "id", "valueColumn": "label"},
        *({"dataset": datasets[org], "column": "id", "features": COLUMNS[org]} for org in COLUMNS),
    ]
    body = {
        "kind": "fl",
        "protocol": "vertical-gbdt",
        "inputs": inputs,
        "gbdt": {
            "trees": 3,
            "depth": 3,
            "learning_rate": 0.3,
            "min_child_samples": 10,
            "early_stopping_rounds": 2,  # up to two trees fewer is a lie the rounds allow
        },
    }
    telecom, bank_a = running.org_ids["telecom"], running.org_ids["bank-a"]
    (mallory.attacks / "gbdt-lies").write_text(str(body["gbdt"]["early_stopping_rounds"]))
    with mallory.attacking("gbdt-lies"):
        response = mallory.submit(body)
        assert response.status_code == 201, response.text
        task_id = int(response.json()["taskId"])
        assert wait_closed(running, task_id, timeout_s=300).status is TaskStatus.SETTLED
    with running.client("telecom", "operator") as client:
        task = wait_status(client, task_id, {"settled"})
    held = json.loads(mallory.result(task_id).json()["items"][0])
    parts = {org: json.loads(_result(running, org, task_id)[0]) for org in COLUMNS}

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
    units = settled_by_units(running, task, [mallory.org_id, telecom, bank_a], inputs)
    assert units == {
        telecom: paid_by_own_splits(parts["telecom"]),
        bank_a: paid_by_own_splits(parts["bank-a"]),
    }
