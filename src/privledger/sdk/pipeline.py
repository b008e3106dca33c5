"""Running a pipeline (F25): the steps of a job file (:mod:`privledger.wire.pipelines`), each a
task on chain through your node, every step as soon as the steps it waits for (``after``) are done:
independent steps run at the same time, up to ``parallel`` of them (the file's order decides
among steps ready together).

The runner records the job on your node first (``POST /pipelines``) and reports every step there
(the task it submitted, the datasets derived, the model registered, the error that stopped it), so
the node's explorer draws the job's DAG with each step's state from the chain. A step that failed
stops the run with :class:`PipelineFailed` (no step starts after it; the steps already running
finish and are recorded first); :func:`resume_pipeline` runs it again later, skipping
every step that settled (its task is not submitted again) and following a task that was still
running when the run was interrupted.

Two tokens, as the node separates the duties: an operator's submits the tasks; a data owner's
(``owner``) registers derived datasets and models. A job without ``derive`` or model steps needs
no owner."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any, NoReturn, TypeVar

from pydantic import JsonValue

from privledger.sdk.client import NodeClient
from privledger.sdk.errors import NotFound, PrivledgerError, TaskFailed
from privledger.wire.defaults import PIPELINE_PARALLEL
from privledger.wire.pipelines import (
    REFERENCE,
    DerivedRef,
    JobIn,
    PipelineOut,
    StepIn,
    StepOut,
    StepRecordIn,
)
from privledger.wire.tasks import TaskOut

T = TypeVar("T")
StepProgress = Callable[[str, str, str], None]
"""Called with a step's id, what happens to it (``submitted``, the task's status, ``derived``,
``registered``, ``skipped``, ``failed``) and a line for a person."""


class PipelineFailed(PrivledgerError):
    """A step could not finish: ``pipeline_id`` can be resumed once the cause is fixed."""

    def __init__(self, pipeline_id: int, step: str, message: str) -> None:
        super().__init__("pipeline_failed", f"pipeline {pipeline_id}, step {step}: {message}")
        self.pipeline_id = pipeline_id
        self.step = step


def run_pipeline(
    operator: NodeClient,
    job: JobIn,
    *,
    owner: NodeClient | None = None,
    variables: Mapping[str, JsonValue] | None = None,
    progress: StepProgress | None = None,
    timeout_s: float = 600.0,
    parallel: int = PIPELINE_PARALLEL,
) -> PipelineOut:
    """Record ``job`` on the node, with ``variables`` in its ``vars`` (so the record says what
    ran and a resumed run uses the same), and run every step, up to ``parallel`` at once.
    Returns the pipeline's final record; raises :class:`PipelineFailed` at a failed step."""
    given = job.model_copy(update={"vars": {**job.vars, **(variables or {})}})
    record = operator.create_pipeline(given)
    return _Run(operator, owner, record, None, progress, timeout_s, parallel).all()


def resume_pipeline(
    operator: NodeClient,
    pipeline_id: int,
    *,
    owner: NodeClient | None = None,
    variables: Mapping[str, JsonValue] | None = None,
    progress: StepProgress | None = None,
    timeout_s: float = 600.0,
    parallel: int = PIPELINE_PARALLEL,
) -> PipelineOut:
    """Run a recorded pipeline again from the steps that did not finish; ``variables`` override
    its recorded ``vars`` for this run (e.g. to mend the value that failed a step)."""
    record = operator.pipeline(pipeline_id)
    return _Run(operator, owner, record, variables, progress, timeout_s, parallel).all()


class _Run:
    def __init__(
        self,
        operator: NodeClient,
        owner: NodeClient | None,
        record: PipelineOut,
        variables: Mapping[str, JsonValue] | None,
        progress: StepProgress | None,
        timeout_s: float,
        parallel: int,
    ) -> None:
        if parallel < 1:
            raise ValueError("parallel: at least one step at a time")
        self.operator = operator
        self.owner = owner
        self.record = record
        self.job = JobIn.model_validate(record.job)
        # what steps name of each other: written by a step's thread, read by its successors'
        self.values: dict[str, JsonValue] = {**self.job.vars, **(variables or {})}
        self.lock = threading.Lock()  # the values, and one progress line at a time
        self.told = progress or (lambda step, phase, line: None)
        self.timeout_s = timeout_s
        self.parallel = parallel
        self.org_names = {org.org_id: org.name for org in operator.orgs()}
        self.own_org = operator.health().org_id

    def all(self) -> PipelineOut:
        """Every step once the steps it waits for are done, up to ``parallel`` at once; after a
        failure no step starts, those running finish, and the first failure is raised. Each step
        runs in a daemon thread: an interrupted run (Ctrl-C) ends without waiting for them."""
        recorded = {step.id: step for step in self.record.steps}
        order = self.job.order()
        ended: queue.Queue[tuple[str, BaseException | None]] = queue.Queue()

        def run(step: StepIn) -> None:
            try:
                self._step(step, recorded[step.id])
            except BaseException as exc:  # raised in the caller's thread by all()
                ended.put((step.id, exc))
            else:
                ended.put((step.id, None))

        done: set[str] = set()
        running: set[str] = set()
        failure: BaseException | None = None
        while True:
            if failure is None:
                ready = [s for s in order if s.id not in running | done and set(s.after) <= done]
                for step in ready[: self.parallel - len(running)]:
                    running.add(step.id)
                    name = f"pipeline-{step.id}"
                    threading.Thread(target=run, args=(step,), name=name, daemon=True).start()
            if not running:
                break
            step_id, error = ended.get()
            running.discard(step_id)
            if error is None:
                done.add(step_id)
            elif failure is None:
                failure = error
        if failure is not None:
            raise failure
        return self.operator.pipeline(self.record.pipeline_id)

    def progress(self, step: str, phase: str, line: str) -> None:
        with self.lock:
            self.told(step, phase, line)

    def _set(self, name: str, value: JsonValue) -> None:
        with self.lock:
            self.values[name] = value

    def _step(self, step: StepIn, recorded: StepOut) -> None:
        if step.model is not None:
            self._model(step, recorded)
            return
        task_id = recorded.task_id
        if task_id is not None and recorded.task_status == "settled":
            if step.derive is None or recorded.derived:
                self.progress(step.id, "skipped", f"settled before as task {task_id}")
                self._keep(step.id, task_id, recorded.derived)
                return
        elif task_id is None or recorded.task_status == "failed":
            body = self._resolved(step, step.task)
            task_id = self._guard(step, lambda: self.operator.submit(body).task_id)
            self._report(step, StepRecordIn(task_id=task_id))
            self.progress(step.id, "submitted", f"task {task_id}")
        # else: submitted by an interrupted run and still under way: follow it
        settled = task_id
        self._guard(
            step,
            lambda: self.operator.settled(
                settled, timeout_s=self.timeout_s, progress=self._follow(step)
            ),
        )
        derived = self._derive(step, settled) if step.derive is not None else []
        self._report(step, StepRecordIn(task_id=settled, derived=derived or None))
        self._keep(step.id, settled, derived)

    def _derive(self, step: StepIn, task_id: int) -> list[DerivedRef]:
        assert step.derive is not None
        owner = self._owner(step)
        upstream = step.derive.upstream_bps
        found = self._guard(step, lambda: owner.derive_task(task_id, upstream_bps=upstream))
        derived = [
            DerivedRef(
                org_id=item.org_id,
                org=self.org_names.get(item.org_id, str(item.org_id)),
                dataset_id=item.dataset_id,
                row_count=item.row_count,
                grant_id=item.grant_id,
            )
            for item in found
        ]
        self.progress(
            step.id, "derived", ", ".join(f"{d.org}: {d.row_count} rows" for d in derived)
        )
        return derived

    def _model(self, step: StepIn, recorded: StepOut) -> None:
        assert step.model is not None
        if recorded.model_id is not None:
            self.progress(step.id, "skipped", f"registered before as {recorded.model_id}")
            self._set(f"{step.id}.model", recorded.model_id)
            return
        spec = self._resolved(step, step.model.model_dump())
        owner = self._owner(step)
        try:
            numbers = ("task", "unit_price", "upstream_bps")
            task_id, price, upstream = (int(spec[key]) for key in numbers)
        except (TypeError, ValueError) as exc:
            self._fail(step, f"a model step's task, unitPrice and upstreamBps are numbers: {exc}")
        name = str(spec["name"])

        def register() -> str:
            try:  # registered by an interrupted run, before it could report it
                known = owner.model(name)
                if known.task_id == task_id:
                    return known.model_id
            except NotFound:
                pass
            return owner.register_model(
                task_id, name, unit_price=price, upstream_bps=upstream
            ).model_id

        model_id = self._guard(step, register)
        self._report(step, StepRecordIn(model_id=model_id))
        self.progress(step.id, "registered", f"model {name} {model_id}")
        self._set(f"{step.id}.model", model_id)

    def _keep(self, step: str, task_id: int | None, derived: list[DerivedRef]) -> None:
        """What later steps may name of ``step``: its task, and each derived dataset by its
        organisation's name and id, as ``requester`` (yours) and, with one partner, ``partner``."""
        if task_id is not None:
            self._set(f"{step}.task", task_id)
        partners = [item for item in derived if item.org_id != self.own_org]
        for item in derived:
            names = [item.org, str(item.org_id)]
            if item.org_id == self.own_org:
                names.append("requester")
            elif len(partners) == 1:
                names.append("partner")
            for name in names:
                self._set(f"{step}.derived.{name}", item.dataset_id)

    def _resolved(self, step: StepIn, value: Any) -> Any:
        """``value`` with every ``${name}`` replaced by what it names."""
        if isinstance(value, str):
            match = REFERENCE.match(value)
            if match is None:
                return value
            name = match.group(1)
            with self.lock:
                known = name in self.values
                found = self.values.get(name)
            if not known:
                self._fail(step, f"{value} names nothing known (a variable or an earlier step)")
            return found
        if isinstance(value, dict):
            return {key: self._resolved(step, item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._resolved(step, item) for item in value]
        return value

    def _owner(self, step: StepIn) -> NodeClient:
        if self.owner is None:
            self._fail(step, "deriving datasets and registering models needs a data owner token")
        return self.owner

    def _follow(self, step: StepIn) -> Callable[[TaskOut], None]:
        def seen(task: TaskOut) -> None:
            self.progress(step.id, task.status, f"task {task.task_id} {task.status}")

        return seen

    def _guard(self, step: StepIn, action: Callable[[], T]) -> T:
        try:
            return action()
        except PrivledgerError as exc:
            self._fail(step, exc.message if isinstance(exc, TaskFailed) else str(exc))

    def _fail(self, step: StepIn, message: str) -> NoReturn:
        self.progress(step.id, "failed", message)
        with suppress(PrivledgerError):  # the node is gone too: the failure is still the step's
            self._report(step, StepRecordIn(error=message[:2_000]))
        raise PipelineFailed(self.record.pipeline_id, step.id, message)

    def _report(self, step: StepIn, report: StepRecordIn) -> None:
        self.operator.record_step(self.record.pipeline_id, step.id, report)
