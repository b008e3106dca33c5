"""Vertical GBDT's export (issue 19): the merged model -- every feature owner's splits, columns
and thresholds -- reaches the requester only with every data owner's consent, i.e. grant terms
listing the output ``model``. Mallory, holding labels for the telecom's subscribers under a grant
allowing vertical-gbdt with the model kept split, asks for the export: its own node refuses it,
and the task it then forges on chain with its own key fails at the telecom's node before the
telecom reads any data -- no split reaches mallory, its fee comes back."""

from __future__ import annotations

import numpy as np
import pytest

from privledger.evm.contracts import FailureReason
from privledger.node.spec import parse_spec
from tests.e2e.test_vertical_dp import vertical_data

from .malicious import Mallory, grant
from .test_requester_attacks import _failed_for, _refused

pytestmark = pytest.mark.security

FEATURES = ["f0", "f1"]


def test_the_feature_owner_refuses_an_export_its_terms_do_not_list(mallory: Mallory) -> None:
    running = mallory.running
    ids, _, subscribers = vertical_data(running, 60, FEATURES, np.random.default_rng(19))
    terms = {
        "protocols": ["vertical-gbdt"],
        "columns": {"id": ["join"], **{f: ["aggregate"] for f in FEATURES}},
        "outputs": ["requester"],  # the model stays split: no export
    }
    issued = grant(running, "telecom", subscribers, mallory.org_id, terms=terms)
    labels = mallory.register(["id", "label"], [[k, str(i % 2)] for i, k in enumerate(ids)])
    inputs = [
        {"dataset": labels, "column": "id", "value_column": "label"},
        {"dataset": subscribers, "column": "id", "features": FEATURES},
    ]
    body = {"kind": "fl", "protocol": "vertical-gbdt", "output": "model", "inputs": inputs}
    _refused(mallory.submit(body), "outputs")  # its node's own check

    orgs = (mallory.org_id, running.org_ids["telecom"])
    spec = parse_spec(
        {
            "protocol": "vertical-gbdt",
            "requester": mallory.org_id,
            "output": "model",
            "inputs": [{**item, "org": org} for item, org in zip(inputs, orgs, strict=True)],
        }
    )
    before = mallory.balance()
    task_id = mallory.forge(spec, [bytes(32), issued])
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before, ("telecom",))
