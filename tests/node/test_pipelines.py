"""A pipeline's record on its node (privledger.node.pipelines): a new task for a step is another
attempt and clears what the earlier task left; a task step's state is its task's on chain, not
the runner's word; the pipeline's state follows its steps'."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import Session

from privledger.evm.contracts import TaskStatus
from privledger.node import pipelines
from privledger.store.db import make_engine, sqlite_url
from privledger.store.models import Pipeline
from privledger.wire.pipelines import DerivedRef, JobIn, StepRecordIn

JOB = JobIn.model_validate(
    {
        "name": "job",
        "steps": [
            {
                "id": "align",
                "task": {"protocol": "kkrt", "inputs": ["${a}", "${b}"]},
                "derive": {},
            },
            {"id": "stats", "after": ["align"], "task": {"protocol": "joint-stats"}},
        ],
    }
)
DERIVED = DerivedRef(org_id=2, org="bank-a", dataset_id="0x" + "ab" * 32, row_count=30)


def _node(statuses: dict[int, TaskStatus]) -> Any:
    tasks = SimpleNamespace(get_task=lambda task_id: SimpleNamespace(status=statuses[task_id]))
    return SimpleNamespace(ledger=SimpleNamespace(tasks=tasks))


def test_a_new_task_is_another_attempt_and_clears_the_earlier_one_s_traces(
    tmp_path: Path,
) -> None:
    with Session(make_engine(sqlite_url(tmp_path / "node.db"))) as session:
        row = pipelines.create(session, JOB, "alice")
        assert row.job_hash.startswith("0x") and len(row.job_hash) == 66
        row = pipelines.record_step(session, row, "align", StepRecordIn(task_id=7))
        row = pipelines.record_step(
            session, row, "align", StepRecordIn(task_id=7, derived=[DERIVED])
        )
        assert row.steps["align"]["attempts"] == 1 and row.steps["align"]["derived"]
        row = pipelines.record_step(session, row, "align", StepRecordIn(error="refused"))
        assert row.steps["align"]["taskId"] == 7 and row.steps["align"]["error"] == "refused"
        row = pipelines.record_step(session, row, "align", StepRecordIn(task_id=9))
        assert row.steps["align"] == {"attempts": 2, "taskId": 9, "error": None}
        with pytest.raises(pipelines.UnknownStep):
            pipelines.record_step(session, row, "train", StepRecordIn(task_id=1))


@pytest.mark.parametrize(
    ("status", "derived", "step_state", "state"),
    [
        (TaskStatus.RUNNING, False, "running", "running"),
        (TaskStatus.SETTLED, False, "running", "running"),  # settled, its datasets to come
        (TaskStatus.SETTLED, True, "settled", "running"),  # the next step has not started
        (TaskStatus.FAILED, True, "failed", "failed"),  # the chain says failed: it failed
    ],
)
def test_a_task_step_s_state_is_its_task_s_on_chain(
    tmp_path: Path, status: TaskStatus, derived: bool, step_state: str, state: str
) -> None:
    with Session(make_engine(sqlite_url(tmp_path / "node.db"))) as session:
        row = pipelines.create(session, JOB, "alice")
        report = StepRecordIn(task_id=7, derived=[DERIVED] if derived else None)
        row = pipelines.record_step(session, row, "align", report)
        view = pipelines.view(_node({7: status}), row)
    align, stats = view.steps
    assert (align.state, align.task_status, stats.state) == (
        step_state,
        status.name.lower(),
        "waiting",
    )
    assert view.state == state


def test_a_pipeline_is_done_when_every_step_settled(tmp_path: Path) -> None:
    with Session(make_engine(sqlite_url(tmp_path / "node.db"))) as session:
        row = pipelines.create(session, JOB, "alice")
        row = pipelines.record_step(
            session, row, "align", StepRecordIn(task_id=7, derived=[DERIVED])
        )
        row = pipelines.record_step(session, row, "stats", StepRecordIn(task_id=8))
        view = pipelines.view(_node({7: TaskStatus.SETTLED, 8: TaskStatus.SETTLED}), row)
    assert [step.state for step in view.steps] == ["settled", "settled"]
    assert view.state == "done" and view.steps[0].derived == [DERIVED]


def test_steps_reporting_at_once_are_all_kept(store_url: str) -> None:
    """Independent steps run at once and report at once, each through its own request (its own
    session): none of the reports is lost to another's write of the steps."""
    steps = [{"id": f"s{k}", "task": {"protocol": "kkrt"}} for k in range(12)]
    job = JobIn.model_validate({"name": "wide", "steps": steps})
    engine = make_engine(store_url)
    with Session(engine) as session:
        pipeline_id = pipelines.create(session, job, "alice").pipeline_id
    start = threading.Barrier(len(steps))

    def report(k: int) -> None:
        with Session(engine) as session:
            row = session.get(Pipeline, pipeline_id)
            assert row is not None
            start.wait()
            pipelines.record_step(session, row, f"s{k}", StepRecordIn(task_id=100 + k))

    with ThreadPoolExecutor(len(steps)) as pool:
        list(pool.map(report, range(len(steps))))
    with Session(engine) as session:
        row = session.get(Pipeline, pipeline_id)
        assert row is not None
        kept = {step: entry.get("taskId") for step, entry in row.steps.items()}
    assert kept == {f"s{k}": 100 + k for k in range(len(steps))}
