"""Spec validation for the federated-learning protocols: each shape is checked before any hash
goes on chain."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from privledger.node.spec import SpecInput, TaskSpec


def ds(n: int) -> str:
    return "0x" + f"{n:064x}"


def client(org: int, *, width: int = 2, label: str | None = "y") -> SpecInput:
    features = tuple(f"f{i}" for i in range(width))
    return SpecInput(dataset=ds(org), org=org, column="id", features=features, value_column=label)


def model_input() -> SpecInput:
    return SpecInput(dataset=ds(2), org=2, column="model")


def spec(protocol: str, inputs: tuple[SpecInput, ...], **extra: Any) -> TaskSpec:
    return TaskSpec(kind="fl", protocol=protocol, requester=1, inputs=inputs, **extra)  # type: ignore[arg-type]


def test_horizontal_fl_is_a_star_around_the_requester() -> None:
    task = spec("horizontal-lr", (client(2), client(3), client(4)), rounds=5, proximal_mu=0.1)
    assert task.participants == [1, 2, 3, 4]  # the requester aggregates without data
    assert task.peers_of(1) == [2, 3, 4] and task.peers_of(3) == [1]
    assert spec("horizontal-mlp", (client(1), client(2))).peers_of(1) == [2]


@pytest.mark.parametrize(
    ("protocol", "inputs", "extra", "message"),
    [
        ("horizontal-lr", (client(2), client(3, width=3)), {}, "same number of feature"),
        ("horizontal-lr", (client(2), client(3, label=None)), {}, "label column"),
        ("horizontal-lr", (client(2), client(3)), {"dealer": 9}, "no dealer"),
        ("horizontal-lr", (client(2), client(3)), {"rounds": 0}, "greater than or equal"),
        ("vertical-lr", (client(1), client(2, label=None)), {"proximal_mu": 1, "dealer": 9}, "mu"),
        ("predict", (client(1, label=None), model_input()), {"rounds": 3}, "no rounds"),
        ("predict", (client(1, label=None), client(2)), {}, "only column 'model'"),
        ("predict", (client(1), SpecInput(dataset=ds(2), org=2, column="model")), {}, "id column"),
        ("predict", (client(2), client(3)), {}, "requester's input"),
    ],
)
def test_malformed_fl_specs_are_refused(
    protocol: str, inputs: tuple[SpecInput, ...], extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(protocol, inputs, **extra)


def test_a_prediction_names_rows_and_one_model() -> None:
    model = SpecInput(dataset=ds(2), org=2, column="model")
    task = spec("predict", (client(1, label=None), model))
    assert task.participants == [1, 2] and task.peers_of(2) == [1]
