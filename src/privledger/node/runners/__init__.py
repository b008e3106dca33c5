"""Protocol runners: one module per task kind turns a :class:`Run` into this party's output."""

from __future__ import annotations

from privledger.node.runners import fl, mpc, pir, psi
from privledger.node.runners.base import Run, RunOutput, TaskRefused

__all__ = ["Run", "RunOutput", "TaskRefused", "run_protocol"]

_BY_KIND = {"psi": psi.run, "pir": pir.run, "stats": mpc.run, "fl": fl.run}


def run_protocol(task: Run) -> RunOutput:
    """Run this party's side of the task's protocol over its channels."""
    return _BY_KIND[task.spec.kind](task)
