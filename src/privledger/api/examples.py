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
        summary = f"{protocol}-PSI: the phone numbers both datasets hold, to you"
        return _task(summary, "psi", protocol, _keys(YOURS, THEIRS))
    if protocol in THREE_PARTY:
        summary = f"{protocol}: three organisations' phone numbers, to you"
        return _task(summary, "psi", protocol, _keys(YOURS, THEIRS, THIRD))
    if protocol in ("difference", "membership"):
        summary = f"{protocol}: your phone numbers against the partner's"
        return _task(summary, "psi", protocol, _keys(YOURS, THEIRS))
    if protocol in PIR_PROTOCOLS:
        holder = {"dataset": THEIRS, "column": "phone", "valueColumn": "segment"}
        summary = f"{protocol}: look your phone numbers up in the partner's data, get each segment"
        return _task(summary, "pir", protocol, [*_keys(YOURS), holder])
    if protocol == "joint-stats":
        summary = "joint statistics of a numeric column across organisations (and a histogram)"
        edges = {"dealer": DEMO_DEALER, "histogramEdges": [0, 1_000, 10_000, 100_000]}
        return _task(summary, "stats", protocol, _keys(YOURS, THEIRS, column="balance"), edges)
    if protocol in ("lending-total", "lending-exceeds"):
        query = {"dataset": YOURS, "column": "customer"}
        if protocol == "lending-exceeds":
            query["valueColumn"] = "limit"
        bank = {"dataset": THEIRS, "column": "customer", "valueColumn": "amount"}
        summary = f"{protocol}: your customer's loans at another bank"
        return _task(summary, "stats", protocol, [query, bank], {"dealer": DEMO_DEALER})
    if protocol in ("vertical-lr", "vertical-gbdt"):
        label = {"dataset": YOURS, "column": "phone", "valueColumn": "fraud"}
        features = {"dataset": THEIRS, "column": "phone", "features": ["calls", "tenure"]}
        # vertical-lr trains on secret shares a dealer's randomness serves; gbdt needs none
        options = {"dealer": DEMO_DEALER, "rounds": 20} if protocol == "vertical-lr" else {}
        summary = f"{protocol}: your labels, the partner's features"
        return _task(summary, "fl", protocol, [label, features], options)
    if protocol in HORIZONTAL_PROTOCOLS:
        client = {"column": "id", "valueColumn": "label", "features": ["x1", "x2"]}
        clients = [{"dataset": THEIRS, **client}, {"dataset": THIRD, **client}]
        summary = f"{protocol}: two other organisations train on their rows, you aggregate"
        return _task(summary, "fl", protocol, clients, {"rounds": 10})
    if protocol == "predict":
        rows = {"dataset": YOURS, "column": "id", "features": ["x1", "x2"]}
        summary = "prediction: your rows scored by the partner's model (a model's id as dataset)"
        return _task(summary, "fl", protocol, [rows, {"dataset": THEIRS, "column": MODEL_COLUMN}])
    if protocol == "vertical-predict":
        rows = {"dataset": THEIRS, "column": "phone", "features": ["calls", "tenure"]}
        model = {"dataset": YOURS, "column": MODEL_COLUMN}
        summary = "joint prediction with your vertical model: the partner's rows above a threshold"
        released = {"dealer": DEMO_DEALER, "output": "ids", "threshold": 0.5, "modelTask": 1}
        return _task(summary, "fl", protocol, [model, rows], released)
    return None  # a protocol added since: the test of the examples names it


def _task(
    summary: str,
    kind: str,
    protocol: str,
    inputs: list[dict[str, Any]],
    options: dict[str, Any] | None = None,
) -> TaskExample:
    return TaskExample(
        summary, {"kind": kind, "protocol": protocol, "inputs": inputs, **(options or {})}
    )


TASK_EXAMPLES: dict[str, TaskExample] = {
    protocol: example
    for protocol in get_args(TaskProtocol)
    if (example := _example(protocol)) is not None
}
"""Every protocol's example, keyed by protocol."""
