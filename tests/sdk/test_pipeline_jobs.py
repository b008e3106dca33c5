"""Job files (privledger.wire.pipelines): the shipped examples parse; a file whose steps do not
form a DAG, or refer to what they cannot have, is refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from privledger.wire.pipelines import JobIn

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _task(*datasets: str) -> dict[str, Any]:
    inputs = [{"dataset": dataset, "column": "id"} for dataset in datasets]
    return {"kind": "psi", "protocol": "kkrt", "inputs": inputs}


def _job(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": "job", "steps": list(steps)}


@pytest.mark.parametrize("name", ["aligned-statistics.json", "fraud-model.json"])
def test_the_examples_are_job_files(name: str) -> None:
    job = JobIn.model_validate_json((EXAMPLES / name).read_bytes())
    assert [step.id for step in job.order()] == [step.id for step in job.steps]
    assert job.steps[0].derive is not None


def test_steps_run_after_what_they_wait_for_in_the_file_s_order_otherwise() -> None:
    job = JobIn.model_validate(
        _job(
            {"id": "c", "after": ["a", "b"], "task": _task("${a.task}", "${b.derived.1}")},
            {"id": "a", "task": _task("${x}", "${y}"), "derive": {}},
            {"id": "b", "after": ["a"], "task": _task("${a.derived.requester}", "${y}")},
        )
    )
    assert [step.id for step in job.order()] == ["a", "b", "c"]
    assert job.steps[0].references() == ["a.task", "b.derived.1"]


@pytest.mark.parametrize(
    ("steps", "says"),
    [
        ([{"id": "a", "task": _task("x", "y")}] * 2, "unique"),
        ([{"id": "a", "after": ["b"], "task": _task("x", "y")}], "unknown steps"),
        (
            [
                {"id": "a", "after": ["b"], "task": _task("x", "y")},
                {"id": "b", "after": ["a"], "task": _task("x", "y")},
            ],
            "wait for each other",
        ),
        (
            [
                {"id": "a", "task": _task("x", "y")},
                {"id": "b", "task": _task("${a.task}", "y")},
            ],
            "not a step it comes after",
        ),
        (
            [
                {"id": "a", "task": _task("x", "y")},
                {"id": "b", "after": ["a"], "task": _task("${a.result}", "y")},
            ],
            "unknown reference",
        ),
        ([{"id": "a"}], "a task or a model"),
        ([{"id": "a", "model": {"task": 1, "name": "m"}, "derive": {}}], "derive belongs"),
        ([{"id": "Bad id", "task": _task("x", "y")}], "should match pattern"),
    ],
)
def test_a_file_that_is_no_dag_is_refused(steps: list[dict[str, Any]], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        JobIn.model_validate(_job(*steps))


def test_an_unknown_field_is_refused_by_name() -> None:
    document = json.loads((EXAMPLES / "aligned-statistics.json").read_text())
    document["steps"][0]["retries"] = 3
    with pytest.raises(ValidationError, match="retries"):
        JobIn.model_validate(document)
