"""Joint prediction (issue 18): a requester naming a low threshold received most of a batch's ids,
since grant terms could not bound the threshold. Terms' ``min_threshold`` now does: every
provider of a vertical-predict task (the model's owner, each party scoring its rows) refuses a
lower threshold, or scores, before it reads any data (``node/terms.violation``, the one check
the requester's node and every provider node run on the spec on chain) -- shown on the matching
function, then between node processes against mallory, whose own key submits the task its
node refused."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from privledger.evm.contracts import FailureReason
from privledger.node.spec import MODEL_COLUMN, SpecInput, TaskSpec, parse_spec
from privledger.node.terms import GrantTerms, violation
from privledger.protocols.fl.joint import predict_joint
from privledger.protocols.fl.vertical import (
    SharedLrScorer,
    VerticalConfig,
    train_vertical_ss_shared,
)
from privledger.protocols.mpc.dealer import local_mesh
from privledger.protocols.mpc.sharing import Party
from tests.e2e.test_vertical_dp import training_body, vertical_data
from tests.e2e.test_vertical_model import _run

from .malicious import Mallory, grant
from .test_requester_attacks import _failed_for, _refused

pytestmark = pytest.mark.security

MODEL = SpecInput(dataset="0x" + "11" * 32, org=1, column=MODEL_COLUMN)
ROWS = SpecInput(dataset="0x" + "22" * 32, org=2, column="id", features=("f0", "f1", "f2"))
BATCH = SpecInput(dataset="0x" + "33" * 32, org=3, column="id")
COLUMNS = {"id": ("join",), "f0": ("aggregate",), "f1": ("aggregate",), "f2": ("aggregate",)}


def _predict(**fields: object) -> TaskSpec:
    return parse_spec(
        {
            "protocol": "vertical-predict",
            "requester": 3,
            "dealer": 9,
            "model_task": 7,
            "inputs": (MODEL, ROWS, BATCH),
            **fields,
        }
    )


def _released(threshold: float) -> tuple[int, int]:
    """A shared model (party 0 the labels, party 1 three columns) and a batch of 100 rows scored
    jointly, the ids above ``threshold`` released to the requester: (released, batch size)."""
    rng = np.random.default_rng(18)
    x = rng.normal(size=(300, 3))
    y = (rng.random(300) < 1 / (1 + np.exp(-(x @ np.array([2.0, -1.0, 0.5]) - 1.0)))).astype(float)
    batch = rng.normal(size=(100, 3))
    ids = [f"+4477{index:06d}".encode() for index in range(100)]

    def run(party: Party) -> int | None:
        own = np.zeros((300, 0)) if party.index == 0 else x
        labels = y if party.index == 0 else None
        model = train_vertical_ss_shared(party, own, labels, config=VerticalConfig(epochs=30))
        released = predict_joint(
            party,
            SharedLrScorer(model, label_holder=0),
            np.zeros((100, 0)) if party.index == 0 else batch,
            rows=100,
            requester=0,
            output="ids",
            threshold=threshold,
            requester_holds_ids=False,
            id_holder=1,
            ids=ids if party.index == 1 else None,
        )
        return None if released is None or released.ids is None else len(released.ids)

    with local_mesh(2) as mesh:
        count = mesh.run(run)[0]
    assert count is not None
    return count, 100


def test_a_low_threshold_released_most_ids_and_terms_with_a_minimum_refuse_it() -> None:
    # the attack: terms listing the output ids let the requester choose any threshold
    open_terms = GrantTerms(protocols=("vertical-predict",), columns=COLUMNS, outputs=("ids",))
    low = _predict(output="ids", threshold=0.01)
    assert violation(low, open_terms, ROWS, fee=0) is None
    flagged, batch = _released(0.5)
    everything, _ = _released(0.01)
    assert flagged < 0.5 * batch and everything > 0.9 * batch  # most of the batch, not the list

    # the fix: a minimum threshold in the terms, held to by every provider before it reads data
    bounded = GrantTerms(
        protocols=("vertical-predict",), columns=COLUMNS, outputs=("scores",), min_threshold=0.5
    )
    refused = violation(low, bounded, ROWS, fee=0)
    assert refused is not None and refused.term == "min_threshold"
    assert str(refused) == "term 'min_threshold': ids at threshold 0.01: only ids at 0.5 or above"
    scores = violation(_predict(output="scores"), bounded, ROWS, fee=0)  # every probability
    assert scores is not None and scores.term == "min_threshold"
    assert violation(_predict(output="ids", threshold=0.5), bounded, ROWS, fee=0) is None
    psi_only = GrantTerms(protocols=("ecdh",), columns={"id": ("join",)}, min_threshold=0.5)
    assert psi_only.unenforceable() == "none of ['ecdh'] releases ids above a threshold"
    assert "min_threshold" not in open_terms.canonical_json()  # older grants keep their hash


def test_the_providers_refuse_a_forged_prediction_below_the_minimum(mallory: Mallory) -> None:
    running = mallory.running
    features = ["f0", "f1"]
    ids, labels, subscribers = vertical_data(running, 120, features, np.random.default_rng(7))
    grant(running, "telecom", subscribers, running.org_ids["bank-b"], kinds=["fl"])
    training = training_body(running, labels, subscribers, features, 10)
    train_id = _run(running, "bank-b", training, 300)["taskId"]
    dealer = running.org_ids["regulator"]
    with running.client("bank-b", "data_owner") as owner:
        body = {"taskId": train_id, "name": f"mt-{secrets.token_hex(3)}"}
        registered = owner.post("/models", json=body)
        assert registered.status_code == 201, registered.text
    model = registered.json()["modelId"]
    bounded = {"protocols": ["vertical-predict"], "outputs": ["ids"], "minThreshold": 0.5}
    model_grant = grant(
        running, "bank-b", model, mallory.org_id, terms={**bounded, "columns": {"model": ["join"]}}
    )
    granted = {"id": ["join"], **{f: ["aggregate"] for f in features}}
    rows_grant = grant(
        running, "telecom", subscribers, mallory.org_id, terms={**bounded, "columns": granted}
    )
    batch = mallory.register(["id"], [[k] for k in ids])
    inputs = [
        {"dataset": model, "column": MODEL_COLUMN},
        {"dataset": subscribers, "column": "id", "features": features},
        {"dataset": batch, "column": "id"},
    ]
    low = {
        "kind": "fl",
        "protocol": "vertical-predict",
        "inputs": inputs,
        "dealer": dealer,
        "output": "ids",
        "threshold": 0.01,
        "modelTask": train_id,
    }
    _refused(mallory.submit(low), "min_threshold")  # its node's own check
    orgs = (running.org_ids["bank-b"], running.org_ids["telecom"], mallory.org_id)
    spec = parse_spec(
        {
            "protocol": "vertical-predict",
            "requester": mallory.org_id,
            "dealer": dealer,
            "model_task": train_id,
            "output": "ids",
            "threshold": 0.01,
            "inputs": [{**item, "org": org} for item, org in zip(inputs, orgs, strict=True)],
        }
    )
    before = mallory.balance()
    task_id = mallory.forge(spec, [model_grant, rows_grant, bytes(32)])
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before, ("bank-b", "telecom"))
