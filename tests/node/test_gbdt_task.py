"""The vertical-gbdt task: its spec, its terms (export by consent, no DP), its configuration and
the binding of its model (privledger.node.spec, node.terms, node.runners.gbdt, node.models)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from privledger.node.models import gbdt_model_hash
from privledger.node.runners.gbdt import gbdt_config
from privledger.node.spec import (
    PROTOCOL_IDS,
    SpecInput,
    VerticalGbdtSpec,
    parse_canonical,
    parse_spec,
)
from privledger.node.terms import GrantTerms, violation

LABELS = SpecInput(dataset="0x" + "11" * 32, org=1, column="id", value_column="label")
COLUMNS = SpecInput(dataset="0x" + "22" * 32, org=2, column="id", features=("f0", "f1"))
GRANTED = {"id": ("join",), "f0": ("aggregate",), "f1": ("aggregate",)}


def _spec(**fields: object) -> VerticalGbdtSpec:
    spec = parse_spec(
        {"protocol": "vertical-gbdt", "requester": 1, "inputs": (LABELS, COLUMNS), **fields}
    )
    assert isinstance(spec, VerticalGbdtSpec)
    return spec


def test_the_spec_carries_its_parameters_and_round_trips() -> None:
    spec = _spec(gbdt={"trees": 3, "depth": 2, "early_stopping_rounds": 2})
    assert spec.kind == "fl" and spec.output == "requester" and spec.dealer_org is None
    assert parse_canonical(spec.canonical_json()) == spec
    config = gbdt_config(spec, 30.0)
    assert (config.trees, config.max_depth, config.early_stopping_rounds) == (3, 2, 2)
    assert config.key_bits == 2048  # the spec cannot lower the key size
    assert PROTOCOL_IDS["vertical-gbdt"] == 18


@pytest.mark.parametrize(
    "fields",
    [
        {"gbdt": {"depth": 7}},  # a leaf mask holds 2^6 leaves
        {"gbdt": {"row_subsample": 0}},
        {"gbdt": {"key_bits": 1024}},
        {"output": "weights"},
        {"dealer": 3},
        {"inputs": (COLUMNS, LABELS)},  # the labels come first
        {"inputs": (LABELS, COLUMNS.model_copy(update={"features": None}))},
    ],
)
def test_a_bad_spec_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _spec(**fields)


def test_the_export_needs_the_terms_to_list_model() -> None:
    kept = GrantTerms(protocols=("vertical-gbdt",), columns=GRANTED)
    consenting = GrantTerms(protocols=("vertical-gbdt",), columns=GRANTED, outputs=("model",))
    assert violation(_spec(), kept, COLUMNS, fee=0) is None
    refused = violation(_spec(output="model"), kept, COLUMNS, fee=0)
    assert refused is not None and refused.term == "outputs"
    assert violation(_spec(output="model"), consenting, COLUMNS, fee=0) is None


def test_terms_with_a_privacy_budget_refuse_training_without_dp() -> None:
    terms = GrantTerms(protocols=("vertical-gbdt", "vertical-lr"), columns=GRANTED, max_epsilon=1.0)
    refused = violation(_spec(), terms, COLUMNS, fee=0)
    assert refused is not None and refused.term == "max_epsilon"


def test_the_model_hash_binds_every_commitment_and_the_parameters() -> None:
    spec, commitments = _spec(), ["aa" * 32, "bb" * 32]
    bound = gbdt_model_hash(7, spec, commitments)
    assert bound == gbdt_model_hash(7, spec, list(commitments))
    assert bound != gbdt_model_hash(7, spec, ["aa" * 32, "cc" * 32])
    assert bound != gbdt_model_hash(8, spec, commitments)
    assert bound != gbdt_model_hash(7, _spec(gbdt={"trees": 11}), commitments)
