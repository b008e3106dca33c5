"""A settled task's output read for what it answers: a PSI's intersection, a PIR query's values,
joint statistics, a multi-lending check, a PSI service call. Each keeps the task's final record
and the salt that opens the result digest anchored on chain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from privledger.wire.tasks import TaskOut, TaskResult


@dataclass(frozen=True)
class TaskAnswer:
    """A settled task's output as the requester received it, with the salt that opens the
    digest anchored on chain and the task's final record."""

    task_id: int
    task: TaskOut
    salt: str
    result_digest: str

    def to_json(self) -> dict[str, object]:
        """The answer for printing: camelCase keys, the task's id, status and fee only."""
        fields = {
            name: value
            for name, value in vars(self).items()
            if name not in ("task_id", "task", "salt", "result_digest")
        }
        head = {"taskId": self.task_id, "status": self.task.status, "feeWei": self.task.fee}
        tail = {"resultDigest": self.result_digest, "salt": self.salt}
        return {**head, **{_camel(name): value for name, value in fields.items()}, **tail}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _head(task: TaskOut, result: TaskResult) -> tuple[int, TaskOut, str, str]:
    """What every answer starts with: the task's id and record, the salt, the digest."""
    return task.task_id, task, result.salt, result.result_digest


def _single(result: TaskResult) -> dict[str, object]:
    (item,) = result.items
    fields: dict[str, object] = json.loads(item)
    return fields


@dataclass(frozen=True)
class ServiceResult(TaskAnswer):
    """A PSI service call: the items of the intersection this caller learnt."""

    items: list[str]

    @classmethod
    def of(cls, task: TaskOut, result: TaskResult) -> ServiceResult:
        return cls(*_head(task, result), items=result.items)


@dataclass(frozen=True)
class PsiAnswer(TaskAnswer):
    """Two-party PSI: the intersection's size and, unless only the size was released, its
    items."""

    size: int
    intersection: list[str] | None

    @classmethod
    def of(cls, task: TaskOut, result: TaskResult, *, size_only: bool = False) -> PsiAnswer:
        """``size_only``: a task whose output is ``size`` (its one item is the size)."""
        if size_only:
            return cls(*_head(task, result), size=int(result.items[0]), intersection=None)
        return cls(*_head(task, result), size=len(result.items), intersection=result.items)


@dataclass(frozen=True)
class PirAnswer(TaskAnswer):
    """Keyword PIR: each key asked for, with its value at the holder or ``None`` (absent)."""

    values: dict[str, str | None]

    @classmethod
    def of(cls, task: TaskOut, result: TaskResult) -> PirAnswer:
        pairs = [json.loads(item) for item in result.items]
        values = {str(key): None if value is None else str(value) for key, value in pairs}
        return cls(*_head(task, result), values=values)


@dataclass(frozen=True)
class StatsAnswer(TaskAnswer):
    """Joint statistics over every input's rows. ``suppressed``: the group is below the
    inputs' minimum group size, so nothing but that fact is released; a histogram bin below it
    is ``None``."""

    suppressed: bool
    count: int | None
    sum: float | None
    mean: float | None
    variance: float | None
    histogram: list[int | None] | None

    @classmethod
    def of(cls, task: TaskOut, result: TaskResult) -> StatsAnswer:
        fields = _single(result)
        histogram = fields.get("histogram")
        return cls(
            *_head(task, result),
            suppressed=bool(fields["suppressed"]),
            count=_int(fields.get("count")),
            sum=_float(fields.get("sum")),
            mean=_float(fields.get("mean")),
            variance=_float(fields.get("variance")),
            histogram=None if not isinstance(histogram, list) else [_int(n) for n in histogram],
        )


@dataclass(frozen=True)
class LendingAnswer(TaskAnswer):
    """Multi-lending check: the customer's total across the other banks (``mode="total"``) or
    only whether it exceeds the limit (``mode="exceeds"``: equal is not exceeding)."""

    mode: Literal["total", "exceeds"]
    banks: int
    total: int | None
    exceeds: bool | None

    @classmethod
    def of(cls, task: TaskOut, result: TaskResult) -> LendingAnswer:
        fields = _single(result)
        exceeds = fields.get("exceeds")
        return cls(
            *_head(task, result),
            mode="exceeds" if fields["mode"] == "exceeds" else "total",
            banks=_int(fields["banks"]) or 0,
            total=_int(fields.get("total")),
            exceeds=None if exceeds is None else bool(exceeds),
        )

    def to_json(self) -> dict[str, object]:
        """As :meth:`TaskAnswer.to_json`, without the field the mode does not answer."""
        unanswered = "total" if self.mode == "exceeds" else "exceeds"
        return {name: value for name, value in super().to_json().items() if name != unanswered}


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _float(value: object) -> float | None:
    return None if value is None else float(str(value))
