"""The typed task spec: one model per protocol, chosen by ``protocol``; every shape is checked
before any hash goes on chain, and the canonical JSON that is hashed is well defined."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from privledger.evm.hashing import keccak256
from privledger.node.components import ComponentRef, ComponentUnavailable, component_for
from privledger.node.spec import (
    PROTOCOL_IDS,
    EcdhSpec,
    HorizontalSpec,
    JointStatsSpec,
    KkrtSpec,
    LendingSpec,
    PirSpec,
    PredictSpec,
    Rr22Spec,
    SetOperationSpec,
    SpecInput,
    TaskSpec,
    VerticalLrSpec,
    parse_canonical,
    parse_spec,
    spec_error,
)


def ds(n: int) -> str:
    return "0x" + f"{n:064x}"


def keys(org: int, column: str = "phone") -> SpecInput:
    return SpecInput(dataset=ds(org), org=org, column=column)


def client(org: int, *, width: int = 2, label: str | None = "y") -> SpecInput:
    features = tuple(f"f{i}" for i in range(width))
    return SpecInput(dataset=ds(org), org=org, column="id", features=features, value_column=label)


def model_input() -> SpecInput:
    return SpecInput(dataset=ds(2), org=2, column="model")


def spec(protocol: str, inputs: tuple[SpecInput, ...], **extra: Any) -> TaskSpec:
    return parse_spec({"protocol": protocol, "requester": 1, "inputs": inputs, **extra})


def refusal(protocol: str, inputs: tuple[SpecInput, ...], **extra: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        spec(protocol, inputs, **extra)
    return spec_error(refused.value)


VALID: list[tuple[str, tuple[SpecInput, ...], dict[str, Any], type]] = [
    ("ecdh", (keys(1), keys(2)), {"output": "both"}, EcdhSpec),
    ("kkrt", (keys(1), keys(2)), {"buckets": 8}, KkrtSpec),
    ("kkrt", (keys(1), keys(2)), {"service": "phones"}, KkrtSpec),
    ("rr22", (keys(1), keys(2)), {"output": "both", "service": "phones"}, Rr22Spec),
    ("intersection3", (keys(1), keys(2), keys(3)), {}, SetOperationSpec),
    ("union3", (keys(1), keys(2), keys(3)), {}, SetOperationSpec),
    ("difference", (keys(1), keys(2)), {}, SetOperationSpec),
    ("membership", (keys(1), keys(2)), {}, SetOperationSpec),
    (
        "simplepir",
        (keys(1), SpecInput(dataset=ds(2), org=2, column="phone", value_column="v")),
        {},
        PirSpec,
    ),
    (
        "joint-stats",
        (keys(1), keys(2)),
        {"dealer": 9, "histogram_edges": (0, 1, 2)},
        JointStatsSpec,
    ),
    (
        "lending-exceeds",
        (keys(1), SpecInput(dataset=ds(2), org=2, column="id", value_column="amount")),
        {"dealer": 9, "frac_bits": 8},
        LendingSpec,
    ),
    ("vertical-lr", (client(1), client(2, label=None)), {"dealer": 9, "rounds": 3}, VerticalLrSpec),
    ("horizontal-lr", (client(2), client(3)), {"proximal_mu": 0.1}, HorizontalSpec),
    ("predict", (client(1, label=None), model_input()), {}, PredictSpec),
]


@pytest.mark.parametrize(("protocol", "inputs", "extra", "model"), VALID)
def test_the_protocol_chooses_the_model_and_the_kind(
    protocol: str, inputs: tuple[SpecInput, ...], extra: dict[str, Any], model: type
) -> None:
    task = spec(protocol, inputs, **extra)
    assert type(task) is model and task.protocol == protocol
    assert task.kind in ("psi", "pir", "stats", "fl")
    with pytest.raises(ValidationError, match="kind"):
        spec(protocol, inputs, kind="psi" if task.kind != "psi" else "fl", **extra)


@pytest.mark.parametrize(("protocol", "inputs", "extra", "model"), VALID)
def test_the_canonical_json_round_trips_to_the_same_hash(
    protocol: str, inputs: tuple[SpecInput, ...], extra: dict[str, Any], model: type
) -> None:
    task = spec(protocol, inputs, **extra)
    raw = task.canonical_json()
    document = json.loads(raw)
    assert list(document) == sorted(document) and b" " not in raw
    assert set(document) == set(model.model_fields)  # every field, defaults included
    again = parse_canonical(raw)
    assert again == task and again.hash == task.hash == keccak256(raw)


def test_the_canonical_form_is_fixed() -> None:
    """A known-answer vector: another implementation hashing this spec must get this hash."""
    component = ComponentRef(name="privledger.psi.ecdh", version="1.0.0", hash="0x" + "ab" * 32)
    task = EcdhSpec(
        protocol="ecdh",
        component=component,
        requester=1,
        inputs=(keys(1), keys(2)),
        nonce="00" * 16,
        project=None,
    )
    assert task.canonical_json() == (
        b'{"component":{"hash":"0x' + b"ab" * 32 + b'","name":"privledger.psi.ecdh",'
        b'"version":"1.0.0"},"inputs":[{"column":"phone","dataset":"0x'
        + b"0" * 63
        + b'1","features":null,"org":1,"value_column":null},{"column":"phone","dataset":"0x'
        + b"0" * 63
        + b'2","features":null,"org":2,"value_column":null}],"kind":"psi",'
        b'"nonce":"00000000000000000000000000000000","output":"requester","project":null,'
        b'"protocol":"ecdh","requester":1,"service":null,"version":3}'
    )
    assert task.hash.hex() == keccak256(task.canonical_json()).hex()
    assert PROTOCOL_IDS["ecdh"] == 1
    assert PROTOCOL_IDS["rr22"] == 17


@pytest.mark.parametrize(
    ("protocol", "inputs", "extra", "field"),
    [
        ("ecdh", (keys(1), keys(2)), {"dealer": 9}, "dealer"),
        ("ecdh", (keys(1), keys(2)), {"buckets": 4}, "buckets"),
        ("rr22", (keys(1), keys(2)), {"buckets": 4}, "buckets"),
        ("simplepir", (keys(1), keys(2)), {"output": "both"}, "output"),
        ("difference", (keys(1), keys(2)), {"service": "x"}, "service"),
        ("horizontal-lr", (client(2), client(3)), {"dealer": 9}, "dealer"),
        ("vertical-lr", (client(1), client(2, label=None)), {"proximal_mu": 1, "dealer": 9}, "mu"),
        ("predict", (client(1, label=None), model_input()), {"rounds": 3}, "rounds"),
        ("joint-stats", (keys(1), keys(2)), {}, "dealer"),
        ("joint-stats", (keys(1), keys(2)), {"dealer": 9, "rounds": 2}, "rounds"),
    ],
)
def test_a_field_the_protocol_does_not_take_is_refused_by_name(
    protocol: str, inputs: tuple[SpecInput, ...], extra: dict[str, Any], field: str
) -> None:
    assert field in refusal(protocol, inputs, **extra)


@pytest.mark.parametrize(
    ("protocol", "inputs", "extra", "message"),
    [
        ("ecdh", (keys(1), keys(1, "email")), {}, "distinct datasets"),
        ("ecdh", (keys(1), SpecInput(dataset=ds(3), org=1, column="x")), {}, "different org"),
        ("ecdh", (keys(1), client(2)), {}, "no value column"),
        ("kkrt", (keys(1), keys(2)), {"buckets": 4, "service": "x"}, "service call"),
        ("kkrt", (keys(1), keys(2)), {"output": "size"}, "only ECDH-PSI"),
        ("rr22", (keys(1), keys(2)), {"output": "size"}, "only ECDH-PSI"),
        ("union3", (keys(1), keys(2)), {}, "takes 3 inputs"),
        ("simplepir", (keys(1), keys(2)), {}, "value column"),
        ("joint-stats", (keys(2), keys(3)), {"dealer": 9}, "requester contributes"),
        ("joint-stats", (keys(1), keys(2)), {"dealer": 2}, "dealer holds none"),
        ("joint-stats", (keys(1), keys(2)), {"dealer": 9, "histogram_edges": (1, 1)}, "increase"),
        ("lending-total", (keys(1), keys(2)), {"dealer": 9}, "amount column"),
        ("horizontal-lr", (client(2), client(3, width=3)), {}, "same number of feature"),
        ("horizontal-lr", (client(2), client(3, label=None)), {}, "label column"),
        ("horizontal-lr", (client(2), client(3)), {"rounds": 0}, "greater than or equal"),
        ("horizontal-mlp", (client(1), client(2)), {}, "two clients besides the requester"),
        ("vertical-lr", (client(1), client(2)), {"dealer": 9}, "only it, names the label"),
        ("predict", (client(1, label=None), client(2)), {}, "only column 'model'"),
        ("predict", (client(1), model_input()), {}, "id column"),
        ("predict", (client(2), client(3)), {}, "requester's rows"),
    ],
)
def test_malformed_specs_are_refused(
    protocol: str, inputs: tuple[SpecInput, ...], extra: dict[str, Any], message: str
) -> None:
    assert message in refusal(protocol, inputs, **extra)


def test_a_protocol_no_installed_component_runs_is_refused() -> None:
    with pytest.raises(ComponentUnavailable, match="no installed component runs protocol 'nope'"):
        spec("nope", (keys(1), keys(2)))


def test_a_spec_naming_the_component_at_another_hash_is_refused() -> None:
    task = spec("ecdh", (keys(1), keys(2)))
    other = task.component.model_copy(update={"hash": "0x" + "00" * 32})
    with pytest.raises(ComponentUnavailable, match="code hash"):
        spec("ecdh", (keys(1), keys(2)), component=other.model_dump())


def test_the_spec_names_the_installed_component_and_its_code_hash() -> None:
    task = spec("kkrt", (keys(1), keys(2)))
    assert task.component == component_for("kkrt").ref
    assert task.component.name == "privledger.psi.kkrt"
    assert task.component.hash.startswith("0x") and len(task.component.hash) == 66


def test_horizontal_fl_is_a_star_around_the_requester() -> None:
    task = spec("horizontal-lr", (client(2), client(3), client(4)), rounds=5, proximal_mu=0.1)
    assert task.participants == [1, 2, 3, 4]  # the requester aggregates without data
    assert task.peers_of(1) == [2, 3, 4] and task.peers_of(3) == [1]
    assert spec("horizontal-mlp", (client(1), client(2), client(3))).peers_of(1) == [2, 3]


def test_the_dealer_takes_part_and_a_prediction_names_rows_and_one_model() -> None:
    stats = spec("joint-stats", (keys(1), keys(2)), dealer=9)
    assert stats.dealer_org == 9 and stats.participants == [1, 2, 9]
    assert spec("ecdh", (keys(1), keys(2))).dealer_org is None
    task = spec("predict", (client(1, label=None), model_input()))
    assert task.participants == [1, 2] and task.peers_of(2) == [1]
