"""Protocol runners: one module per task kind turns a :class:`Run` into this party's output."""

from __future__ import annotations

import logging

from privledger.node.runners import fl, gbdt, mpc, pir, psi
from privledger.node.runners.base import InputForm, Run, RunOutput, TaskRefused
from privledger.node.spec import KkrtSpec, TaskSpec

__all__ = ["InputForm", "Run", "RunOutput", "TaskRefused", "input_form", "run_protocol"]

logger = logging.getLogger(__name__)

_BY_KIND = {"psi": psi.run, "pir": pir.run, "stats": mpc.run, "fl": fl.run}
_BY_PROTOCOL = {"vertical-gbdt": gbdt.run}  # protocols with a runner module of their own


def input_form(spec: TaskSpec) -> InputForm:
    """How the task's runner takes this party's input."""
    if isinstance(spec, KkrtSpec) and spec.buckets is not None:
        return "file"
    if spec.kind == "psi" and spec.protocol in psi.COLUMN_PROTOCOLS:
        return "column"
    return "rows"


def run_protocol(task: Run) -> RunOutput:
    """Run this party's side of the task's protocol over its channels."""
    logger.info(
        "task %d: %s starts as the %s (org %d), %d rows",
        task.task.task_id,
        task.spec.protocol,
        task.role,
        task.org,
        len(task.rows),
    )
    return _BY_PROTOCOL.get(task.spec.protocol, _BY_KIND[task.spec.kind])(task)
