"""A task body for every protocol: the examples of the API's ``TaskIn`` schema (shown by the
docs page) and what ``privledger task template PROTOCOL`` prints. The bodies use the demo's
columns and stand-in dataset ids; ``tests/node/test_task_examples.py`` builds each one's spec,
so an example that a protocol's rules no longer accept fails a test rather than a newcomer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from privledger.node.spec import (
    HORIZONTAL_PROTOCOLS,
    MODEL_COLUMN,
    PIR_PROTOCOLS,
    PSI_PROTOCOLS,
    THREE_PARTY,
    TaskProtocol,
)

YOURS = "0x" + "11" * 32
"""Stands for a dataset of yours (``privledger dataset list``)."""
THEIRS = "0x" + "22" * 32
"""Stands for the partner's dataset (its id from the partner, or the explorer's datasets)."""
THIRD = "0x" + "33" * 32
"""Stands for a third organisation's dataset."""
DEMO_DEALER = 4  # the demo's regulator: holds no input, deals the correlated randomness
STAND_INS = {YOURS: "your dataset", THEIRS: "the partner's dataset", THIRD: "a third dataset"}


@dataclass(frozen=True)
class TaskExample:
    summary: str
    body: dict[str, Any]

    def stand_ins(self) -> list[str]:
        """What to replace before submitting: each stand-in dataset id the body uses."""
        used = [item["dataset"] for item in self.body["inputs"]]
        notes = [f"{dataset}: {STAND_INS[dataset]}" for dataset in STAND_INS if dataset in used]
        if "dealer" in self.body:
            notes.append(f"dealer {DEMO_DEALER}: the demo's regulator, an org holding no input")
        if "modelTask" in self.body:
            notes.append("modelTask: the vertical-lr or vertical-gbdt task that trained the model")
        return notes


def _keys(*datasets: str, column: str = "phone") -> list[dict[str, Any]]:
    return [{"dataset": dataset, "column": column} for dataset in datasets]


def _example(protocol: str) -> TaskExample | None:
    """The example of one protocol (every one of :data:`TaskProtocol` has one)."""
    if protocol in PSI_PROTOCOLS:
        return TaskExample(
            f"{protocol}-PSI: the phone numbers both datasets hold, to you",
            {"kind": "psi", "protocol": protocol, "inputs": _keys(YOURS, THEIRS)},
        )
    if protocol in THREE_PARTY:
        return TaskExample(
            f"{protocol}: three organisations' phone numbers, to you",
            {"kind": "psi", "protocol": protocol, "inputs": _keys(YOURS, THEIRS, THIRD)},
        )
    if protocol in ("difference", "membership"):
        return TaskExample(
            f"{protocol}: your phone numbers against the partner's",
            {"kind": "psi", "protocol": protocol, "inputs": _keys(YOURS, THEIRS)},
        )
    if protocol in PIR_PROTOCOLS:
        holder = {"dataset": THEIRS, "column": "phone", "valueColumn": "segment"}
        return TaskExample(
            f"{protocol}: look your phone numbers up in the partner's data, get each segment",
            {"kind": "pir", "protocol": protocol, "inputs": [*_keys(YOURS), holder]},
        )
    if protocol == "joint-stats":
        return TaskExample(
            "joint statistics of a numeric column across organisations (and a histogram)",
            {
                "kind": "stats",
                "protocol": protocol,
                "inputs": _keys(YOURS, THEIRS, column="balance"),
                "dealer": DEMO_DEALER,
                "histogramEdges": [0, 1_000, 10_000, 100_000],
            },
        )
    if protocol in ("lending-total", "lending-exceeds"):
        query = {"dataset": YOURS, "column": "customer"}
        if protocol == "lending-exceeds":
            query["valueColumn"] = "limit"
        bank = {"dataset": THEIRS, "column": "customer", "valueColumn": "amount"}
        return TaskExample(
            f"{protocol}: your customer's loans at another bank",
            {"kind": "stats", "protocol": protocol, "inputs": [query, bank], "dealer": DEMO_DEALER},
        )
    if protocol in ("vertical-lr", "vertical-gbdt"):
        label = {"dataset": YOURS, "column": "phone", "valueColumn": "fraud"}
        features = {"dataset": THEIRS, "column": "phone", "features": ["calls", "tenure"]}
        body: dict[str, Any] = {"kind": "fl", "protocol": protocol, "inputs": [label, features]}
        if protocol == "vertical-lr":  # trained on secret shares; gbdt needs no dealer
            body |= {"dealer": DEMO_DEALER, "rounds": 20}
        return TaskExample(f"{protocol}: your labels, the partner's features", body)
    if protocol in HORIZONTAL_PROTOCOLS:
        client = {"column": "id", "valueColumn": "label", "features": ["x1", "x2"]}
        return TaskExample(
            f"{protocol}: two other organisations train on their rows, you aggregate",
            {
                "kind": "fl",
                "protocol": protocol,
                "inputs": [{"dataset": THEIRS, **client}, {"dataset": THIRD, **client}],
                "rounds": 10,
            },
        )
    if protocol == "predict":
        rows = {"dataset": YOURS, "column": "id", "features": ["x1", "x2"]}
        return TaskExample(
            "prediction: your rows scored by the partner's model (a model's id as dataset)",
            {
                "kind": "fl",
                "protocol": protocol,
                "inputs": [rows, {"dataset": THEIRS, "column": MODEL_COLUMN}],
            },
        )
    if protocol == "vertical-predict":
        rows = {"dataset": THEIRS, "column": "phone", "features": ["calls", "tenure"]}
        return TaskExample(
            "joint prediction with your vertical model: the partner's rows above a threshold",
            {
                "kind": "fl",
                "protocol": protocol,
                "inputs": [{"dataset": YOURS, "column": MODEL_COLUMN}, rows],
                "dealer": DEMO_DEALER,
                "output": "ids",
                "threshold": 0.5,
                "modelTask": 1,
            },
        )
    return None  # a protocol added since: the test of the examples names it


TASK_EXAMPLES: dict[str, TaskExample] = {
    protocol: example
    for protocol in get_args(TaskProtocol)
    if (example := _example(protocol)) is not None
}
"""Every protocol's example, keyed by protocol."""
