"""Mallory's node process: the product's node with the changes a malicious requester makes to
its own node (run as ``python -m tests.security.modified_node node run ...``).

Each change is off until a file of its name exists in the folder ``$MALLORY_ATTACKS`` (the test
holds it), so that one node process serves every attack test:

- ``fail-after-result``: as the requester, once the protocol gave it the result, fail the task
  on chain instead of anchoring -- to take the fee back; what the chain answered is appended to
  ``fail-after-result.log`` as ``<task id> <outcome>``.
- ``slow-acks``: answer a provider's frame stream only seconds after it ended, so that a provider
  that waits for that answer before it anchors is still waiting when the task is failed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

ATTACKS_ENV = "MALLORY_ATTACKS"
SLOW_ACK_S = 5.0


def _attacking(name: str) -> bool:
    return (Path(os.environ[ATTACKS_ENV]) / name).exists()


def install() -> None:
    from privledger.api.routes import peer
    from privledger.evm.contracts import FailureReason
    from privledger.evm.errors import ChainRevert
    from privledger.node import worker

    anchor = worker.Worker._anchor

    def fail_instead_of_anchoring(self: worker.Worker, task: Any, outcome: Any) -> None:
        if not (_attacking("fail-after-result") and task.requester_org == self.node.org_id):
            anchor(self, task, outcome)
            return
        try:
            self.node.ledger.tasks.fail_task(task.task_id, FailureReason.PROTOCOL_ERROR)
            answer = "failed"
        except ChainRevert as exc:
            answer = f"reverted {exc.error}"
        log = Path(os.environ[ATTACKS_ENV]) / "fail-after-result.log"
        with log.open("a") as handle:
            handle.write(f"{task.task_id} {answer}\n")

    worker.Worker._anchor = fail_instead_of_anchoring  # type: ignore[method-assign]

    receive = peer.receive_stream

    async def answer_late(*args: Any, **kwargs: Any) -> int:
        count = await receive(*args, **kwargs)
        if _attacking("slow-acks"):
            await asyncio.sleep(SLOW_ACK_S)
        return count

    peer.receive_stream = answer_late  # type: ignore[assignment]


if __name__ == "__main__":
    install()
    from privledger.cli import app

    app(prog_name="privledger")
