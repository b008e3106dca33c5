"""Vertical gradient-boosted trees as a ledger task (issue 19), between node processes: bank-b
holds the labels only, the telecom its subscribers' columns; they train by SecureBoost (early
stopping on the validation fifth), the telecom's terms consenting to the export of the merged
model; bank-b registers the model, and bank-a's batch is scored jointly -- each party
evaluating its own splits -- to the exported LightGBM model's probabilities on the same rows,
its features named by the telecom's columns. Then bank-a's columns join as a third party (every
party consenting to the export): the three-party model scores jointly as its export too. Both
feature owners' terms price by contribution: each anchors its aligned rows times its own share of
the model's splits, and the fee is split between them by those units to the wei, as the
settlement record says."""

from __future__ import annotations

import json
import secrets
from typing import Any

import lightgbm as lgb
import numpy as np

from privledger.node.runners.gbdt import contribution_units
from privledger.node.settlement import settlement_record
from privledger.node.spec import parse_spec

from .conftest import Running
from .test_vertical_model import _register, _result, _run, _write
from .test_walking_path import FEE, fee_allocations, grant

FEATURES = ["f0", "f1", "f2", "f3"]
SQUARES = ["g0", "g1"]  # bank-a's columns in the three-party model
PRICE = 10**12
BATCH = 80


def _rows(ids: list[str], matrix: np.ndarray) -> list[list[str]]:
    return [[k, *(repr(float(v)) for v in row)] for k, row in zip(ids, matrix, strict=True)]


def _terms(protocol: str, columns: list[str], outputs: list[str]) -> dict[str, object]:
    uses = {column: ["aggregate"] for column in columns}
    return {"protocols": [protocol], "columns": {"id": ["join"], **uses}, "outputs": outputs}


def _by_contribution(terms: dict[str, object]) -> dict[str, object]:
    return {**terms, "price": {"unit": "contribution", "wei": PRICE}}


def settled_by_units(
    running: Running, task: dict[str, Any], ids: list[int], inputs: list[dict[str, Any]]
) -> dict[int, int]:
    """The units the feature owners (``ids[1:]``, the owners of ``inputs``; the requester
    first) anchored, once checked that the ledger split the fee between them by those units to
    the wei, as :func:`settlement_record` says."""
    task_id = int(task["taskId"])
    ledger = running.ledger(0)
    units = {org: ledger.tasks.units_of(task_id, org) for org in ids[1:]}
    spec_inputs = [
        {
            "dataset": item["dataset"],
            "org": org,
            "column": item["column"],
            **({"value_column": item["valueColumn"]} if "valueColumn" in item else {}),
            **({"features": item["features"]} if "features" in item else {}),
        }
        for item, org in zip(inputs, ids, strict=True)
    ]
    spec = parse_spec({"protocol": "vertical-gbdt", "requester": ids[0], "inputs": spec_inputs})
    record = settlement_record(ledger, spec, task_id)
    assert ledger.tasks.settlement_of(task_id) == (record.hash, True)
    assert [c.units for c in record.contributions[1:]] == list(units.values())
    paid = fee_allocations(task)  # the last payee gets the remainder of the integer division
    first = FEE * units[ids[1]] // sum(units.values())
    assert paid == ({ids[1]: first, ids[2]: FEE - first} if len(ids) == 3 else {ids[1]: FEE})
    return units


def _ids(running: Running, *orgs: str) -> list[int]:
    return [running.org_ids[org] for org in orgs]


def paid_by_own_splits(part: dict[str, Any]) -> int:
    """A feature owner's result under terms priced by contribution: its units, from its count."""
    own, total = part["splits"]["own"], part["splits"]["total"]
    assert part["paid_by"] == "contribution" and part.get("shapes_agree", True)
    assert part["units"] == contribution_units(part["aligned"], own, total)
    return int(part["units"])


def test_a_vertical_gbdt_is_trained_registered_and_scores_as_its_lightgbm_export(
    running: Running,
) -> None:
    rng = np.random.default_rng(19)
    tag = secrets.token_hex(3)
    n = 300
    x = rng.normal(size=(n, 4))
    y = ((x[:, 0] > 0.3) ^ (x[:, 1] * x[:, 2] > 0.2)).astype(int)  # not linear: trees' case
    ids = [f"+4478{tag}{i:04d}" for i in range(n)]
    data = running.data_dir
    labels = _write(
        data / f"gb-labels-{tag}.csv",
        ["id", "label"],
        [[k, str(v)] for k, v in zip(ids, y, strict=True)],
    )
    subscribers = _write(data / f"gb-subs-{tag}.csv", ["id", *FEATURES], _rows(ids, x))
    label_data = _register(running, "bank-b", labels, PRICE)
    telecom_data = _register(running, "telecom", subscribers, PRICE)
    granted = _by_contribution(_terms("vertical-gbdt", FEATURES, ["requester", "model"]))
    grant(running, "telecom", telecom_data, "bank-b", kinds=[], terms=granted)
    inputs = [
        {"dataset": label_data, "column": "id", "valueColumn": "label"},
        {"dataset": telecom_data, "column": "id", "features": FEATURES},
    ]
    training = {
        "kind": "fl",
        "protocol": "vertical-gbdt",
        "inputs": inputs,
        "output": "model",
        "gbdt": {
            "trees": 4,
            "depth": 3,
            "learning_rate": 0.3,
            "min_child_samples": 10,
            "early_stopping_rounds": 1,  # on the validation fifth of the aligned rows
        },
        "feeWei": FEE,
    }
    trained = _run(running, "bank-b", training, 240)
    train_id = trained["taskId"]
    holder, owner = (
        json.loads(_result(running, org, train_id)[0]) for org in ("bank-b", "telecom")
    )
    assert holder["model_hash"] == owner["model_hash"]
    assert holder["commitments"] == owner["commitments"]
    assert "leaf_values" in holder["model"] and "leaf_values" not in owner["model"]
    assert "lightgbm" not in owner and 1 <= holder["trees"] <= 4
    shares = holder["contributions"]
    assert set(shares) == {str(running.org_ids[org]) for org in ("bank-b", "telecom")}
    assert shares[str(running.org_ids["telecom"])] == 1.0  # bank-b has no column to split on
    # ... so the telecom's splits are all the model's: paid for every aligned row
    assert owner["splits"]["own"] == owner["splits"]["total"] > 0
    assert paid_by_own_splits(owner) == owner["aligned"]
    assert settled_by_units(running, trained, _ids(running, "bank-b", "telecom"), inputs) == {
        running.org_ids["telecom"]: owner["aligned"]
    }

    # the model is an asset: bank-b, the label holder, registers it; the telecom cannot
    with running.client("bank-b", "data_owner") as client:
        body = {"taskId": train_id, "name": f"gbdt-{tag}", "unitPrice": PRICE, "upstreamBps": 0}
        response = client.post("/models", json=body)
        assert response.status_code == 201, response.text
        registered = response.json()
    assert registered["modelHash"] == holder["model_hash"]
    assert registered["protocol"] == "vertical-gbdt"
    assert sorted(registered["parents"]) == sorted([label_data, telecom_data])
    with running.client("telecom", "data_owner") as client:
        refused = client.post("/models", json={**body, "name": f"gbdt-{tag}-t"})
        assert refused.status_code == 409, refused.text

    # joint prediction: bank-a's batch, the telecom's current columns, the registered model
    current = x + rng.normal(scale=0.1, size=x.shape)
    current_rows = _rows(ids, current)
    current_data = _register(
        running,
        "telecom",
        _write(data / f"gb-current-{tag}.csv", ["id", *FEATURES], current_rows),
        0,
    )
    batch = _register(
        running,
        "bank-a",
        _write(data / f"gb-batch-{tag}.csv", ["id"], [[k] for k in ids[:BATCH]]),
        0,
    )
    model_terms = {"protocols": ["vertical-predict"], "columns": {"model": ["join"]}}
    grant(
        running,
        "bank-b",
        registered["modelId"],
        "bank-a",
        kinds=[],
        terms={**model_terms, "outputs": ["scores"]},
    )
    grant(
        running,
        "telecom",
        current_data,
        "bank-a",
        kinds=[],
        terms=_terms("vertical-predict", FEATURES, ["scores"]),
    )
    predict = {
        "kind": "fl",
        "protocol": "vertical-predict",
        "inputs": [
            {"dataset": registered["modelId"], "column": "model"},
            {"dataset": current_data, "column": "id", "features": FEATURES},
            {"dataset": batch, "column": "id"},
        ],
        "dealer": running.org_ids["regulator"],
        "output": "scores",
        "modelTask": train_id,
        "feeWei": FEE,
    }
    done = _run(running, "bank-a", predict, 180)
    scored = dict(json.loads(item) for item in _result(running, "bank-a", done["taskId"]))
    assert sorted(scored) == sorted(ids[:BATCH])

    # the same probabilities from the exported model, loaded by LightGBM itself
    booster = lgb.Booster(model_str=holder["lightgbm"])
    assert booster.num_trees() == holder["trees"] == len(owner["model"]["trees"])
    assert booster.feature_name() == FEATURES  # the telecom revealed its column names
    expected = booster.predict(current[:BATCH])
    joint = np.array([scored[k] for k in ids[:BATCH]])
    assert np.allclose(joint, expected, atol=1e-4), np.abs(joint - expected).max()
    assert 0.05 < float(np.mean(expected >= 0.5)) < 0.95  # the model tells rows apart

    # the export needs every data owner's consent: terms without "model" refuse it
    kept = _terms("vertical-gbdt", FEATURES, ["requester"])
    grant(running, "telecom", current_data, "bank-b", kinds=[], terms=kept)
    current_input = {"dataset": current_data, "column": "id", "features": FEATURES}
    with running.client("bank-b", "operator") as client:
        response = client.post("/tasks", json={**training, "inputs": [inputs[0], current_input]})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "terms_violation"

    # three parties: bank-a's columns join as a second feature owner, consenting to the export
    extra = _write(data / f"gb-a-{tag}.csv", ["id", *SQUARES], _rows(ids, x[:, :2] ** 2))
    bank_a_data = _register(running, "bank-a", extra, PRICE)
    consent = _by_contribution(_terms("vertical-gbdt", SQUARES, ["requester", "model"]))
    grant(running, "bank-a", bank_a_data, "bank-b", kinds=[], terms=consent)
    second = {"dataset": bank_a_data, "column": "id", "features": SQUARES}
    three = {
        **training,
        "inputs": [*inputs, second],
        "gbdt": {"trees": 2, "depth": 2, "min_child_samples": 10},
    }
    settled = _run(running, "bank-b", three, 240)
    three_id = settled["taskId"]
    orgs = ("bank-b", "telecom", "bank-a")
    parts = [json.loads(_result(running, org, three_id)[0]) for org in orgs]
    # each feature owner counted its own splits as the label holder did; the fee follows them
    counts = parts[0]["split_counts"]
    units = settled_by_units(running, settled, _ids(running, *orgs), three["inputs"])
    for org, part in zip(orgs[1:], parts[1:], strict=True):
        own = counts[str(running.org_ids[org])]
        assert part["splits"] == {"own": own, "total": sum(counts.values())}
        assert units[running.org_ids[org]] == paid_by_own_splits(part) > 0
    assert len({part["model_hash"] for part in parts}) == 1 and len(parts[0]["commitments"]) == 3
    assert parts[0]["trees"] == 2 and all("lightgbm" not in part for part in parts[1:])
    assert set(parts[0]["contributions"]) == {str(running.org_ids[org]) for org in orgs}
    assert abs(sum(parts[0]["contributions"].values()) - 1.0) < 1e-9
    assert all(parts[0]["contributions"][str(running.org_ids[org])] > 0 for org in orgs[1:])
    exported = lgb.Booster(model_str=parts[0]["lightgbm"])
    assert exported.feature_name() == [*FEATURES, *SQUARES]

    # ... and its joint prediction: bank-a scores its current rows with all three parties
    with running.client("bank-b", "data_owner") as client:
        body = {"taskId": three_id, "name": f"gbdt3-{tag}", "unitPrice": PRICE, "upstreamBps": 0}
        response = client.post("/models", json=body)
        assert response.status_code == 201, response.text
        three_model = response.json()["modelId"]
    grant(
        running,
        "bank-b",
        three_model,
        "bank-a",
        kinds=[],
        terms={**model_terms, "outputs": ["scores"]},
    )
    squares = current[:BATCH, :2] ** 2
    bank_a_current = _register(
        running,
        "bank-a",
        _write(data / f"gb-a-current-{tag}.csv", ["id", *SQUARES], _rows(ids[:BATCH], squares)),
        0,
    )
    predict3 = {
        **predict,
        "inputs": [
            {"dataset": three_model, "column": "model"},
            {"dataset": current_data, "column": "id", "features": FEATURES},
            {"dataset": bank_a_current, "column": "id", "features": SQUARES},
        ],
        "modelTask": three_id,
    }
    done3 = _run(running, "bank-a", predict3, 180)
    scored3 = dict(json.loads(item) for item in _result(running, "bank-a", done3["taskId"]))
    assert sorted(scored3) == sorted(ids[:BATCH])
    joint3 = np.array([scored3[k] for k in ids[:BATCH]])
    expected3 = exported.predict(np.hstack([current[:BATCH], squares]))
    assert np.allclose(joint3, expected3, atol=1e-4), np.abs(joint3 - expected3).max()
