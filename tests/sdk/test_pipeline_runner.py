"""The pipeline runner's schedule (privledger.sdk.pipeline) against a node played in process: steps
that wait for nothing run at once, never more than ``parallel``; a failed step lets the running
ones finish and be recorded, and no step starts after it. (The same runner against real nodes:
tests/e2e/test_pipelines.py.)"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from privledger.sdk.errors import PrivledgerError
from privledger.sdk.pipeline import PipelineFailed, run_pipeline
from privledger.wire.pipelines import JobIn, PipelineOut, StepOut, StepRecordIn

SETTLE_S = 0.3  # how long each task takes to settle here


class Node:
    """An operator's client, as much of it as the runner uses: a task settles ``SETTLE_S`` after
    its submission; a body with ``"refuse": true`` is refused at submission."""

    def __init__(self, job: JobIn) -> None:
        self.job = job
        self.lock = threading.Lock()
        self.waiting = 0
        self.most = 0  # tasks waited for at once, at most
        self.submitted: list[str] = []
        self.reports: dict[str, list[StepRecordIn]] = {}

    def orgs(self) -> list[Any]:
        return []

    def health(self) -> Any:
        return SimpleNamespace(org_id=1)

    def create_pipeline(self, job: JobIn) -> PipelineOut:
        steps = [StepOut(id=s.id, kind=s.kind, after=s.after, state="waiting") for s in job.steps]
        return PipelineOut.model_construct(pipeline_id=7, job=job.model_dump(), steps=steps)

    def submit(self, body: dict[str, Any]) -> Any:
        if body.get("refuse"):
            raise PrivledgerError("invalid_task", f"{body['name']} is refused")
        with self.lock:
            self.submitted.append(str(body["name"]))
            return SimpleNamespace(task_id=len(self.submitted))

    def settled(self, task_id: int, *, timeout_s: float, progress: Any) -> Any:
        with self.lock:
            self.waiting += 1
            self.most = max(self.most, self.waiting)
        time.sleep(SETTLE_S)
        with self.lock:
            self.waiting -= 1
        return SimpleNamespace(task_id=task_id)

    def record_step(self, pipeline_id: int, step: str, report: StepRecordIn) -> None:
        with self.lock:
            self.reports.setdefault(step, []).append(report)

    def pipeline(self, pipeline_id: int) -> str:
        return "final record"


def _job(*steps: tuple[str, list[str], bool]) -> JobIn:
    return JobIn.model_validate(
        {
            "name": "j",
            "steps": [
                {"id": name, "after": after, "task": {"name": name, "refuse": refuse}}
                for name, after, refuse in steps
            ],
        }
    )


@pytest.mark.parametrize("parallel", [1, 2, 4])
def test_independent_steps_run_at_once_up_to_the_limit(parallel: int) -> None:
    job = _job(*((f"s{k}", [], False) for k in range(4)), ("last", ["s0", "s3"], False))
    node = Node(job)
    started = time.monotonic()
    assert run_pipeline(node, job, parallel=parallel) == "final record"  # type: ignore[arg-type]
    took = time.monotonic() - started
    assert node.most == parallel
    assert node.submitted[-1] == "last" and sorted(node.submitted[:4]) == ["s0", "s1", "s2", "s3"]
    rounds = -(-4 // parallel) + 1  # the four independent steps, then the last
    assert rounds * SETTLE_S <= took < (rounds + 1) * SETTLE_S + 1.0


def test_a_failed_step_lets_the_running_ones_finish_and_starts_no_other() -> None:
    job = _job(("slow", [], False), ("bad", [], True), ("after-slow", ["slow"], False))
    node = Node(job)
    with pytest.raises(PipelineFailed) as failed:
        run_pipeline(node, job)  # type: ignore[arg-type]
    assert failed.value.step == "bad" and "refused" in str(failed.value)
    assert node.submitted == ["slow"]  # after-slow never started
    assert [r.task_id for r in node.reports["slow"]] == [1, 1]  # submitted, then settled
    assert node.reports["bad"][-1].error == "bad is refused"
    assert "after-slow" not in node.reports
