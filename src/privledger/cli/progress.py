"""Following a task while the command waits: a line at each change of what it waits for, and on a
terminal a progress bar through its phases (submitted → authorised → running → anchored →
settled) with the results anchored so far and the bytes this node sent."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from privledger.cli.output import console

if TYPE_CHECKING:
    from privledger.wire.tasks import TaskOut

PHASES = ("submitted", "authorised", "running", "anchored", "settled")
REACHED = {"submitted": 1, "authorised": 2, "running": 3, "completed": 4, "settled": 5}


def task_line(task: TaskOut) -> str:
    """A task's state in one line: a task waiting for approvals names the datasets and how
    their owners decide."""
    events = task.timeline
    decisions = ("InputApproved", "InputRejected")
    decided = {event.args["datasetId"] for event in events if event.event in decisions}
    pending = [
        str(event.args["datasetId"])
        for event in events
        if event.event == "ApprovalRequested" and event.args["datasetId"] not in decided
    ]
    head = f"task {task.task_id} ({task.kind}): {task.status}"
    if task.status == "submitted" and pending:
        return (
            f"{head}, waiting for the owners' approval of {', '.join(pending)} (the owner runs "
            f"`privledger approval approve {task.task_id} <dataset>`, or its workflow console)"
        )
    state = task.local_state
    return f"{head}{f' (this node: {state})' if state else ''}"


def phase(task: TaskOut) -> tuple[int, str]:
    """How many of :data:`PHASES` the task has reached, and what the bar says of the last: the
    results anchored of the participants', and the bytes this node sent."""
    reached = REACHED.get(task.status, 0)
    if task.status == "failed":  # the phases it passed, from its timeline
        started = {event.event for event in task.timeline}
        reached = 1 + ("TaskAuthorised" in started) + ("TaskStarted" in started)
    anchored = sum(event.event == "ResultAnchored" for event in task.timeline)
    words = [PHASES[max(reached, 1) - 1] if task.status != "failed" else "failed"]
    if anchored and reached < 5:
        words.append(f"{anchored}/{len(task.participants)} anchored")
    sent = task.local_bytes_sent
    if sent:
        words.append(f"{_size(sent)} sent")
    return reached, ", ".join(words)


def _size(count: int) -> str:
    value, unit = float(count), "B"
    for bigger in ("kB", "MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def following(task_id: int, timeout_s: float, answer: Callable[..., Any]) -> Any:
    """``answer(task_id, timeout_s=..., progress=...)``, saying on stderr what the task waits
    for at each change (a line that stays) and, on a terminal, its phase."""
    said = ""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("task {task.fields[task_id]}"),
        BarColumn(bar_width=20),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with bar:
        row = bar.add_task("submitted", total=len(PHASES), task_id=task_id)
        started = time.monotonic()

        def progress(task: TaskOut) -> None:
            nonlocal said
            line = task_line(task)
            if line != said:
                elapsed = f"{time.monotonic() - started:.0f} s"
                console.print(f"{line} [{elapsed}]", highlight=False, markup=False)
                said = line
            reached, words = phase(task)
            bar.update(row, completed=reached, description=words)

        return answer(task_id, timeout_s=timeout_s, progress=progress)
