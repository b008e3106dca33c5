"""Mallory's node process: the product's node with the changes a malicious requester makes to
its own node (run as ``python -m tests.security.modified_node node run ...``).

Each change is off until a file of its name exists in the folder ``$MALLORY_ATTACKS`` (the test
holds it), so that one node process serves every attack test:

- ``fail-after-result``: as the requester, once the protocol gave it the result, fail the task
  on chain instead of anchoring -- to take the fee back; what the chain answered is appended to
  ``fail-after-result.log`` as ``<task id> <outcome>``.
- ``withhold-reveal``: as the requester of a KKRT or RR22 task whose output goes to both
  parties, keep the matched positions that would tell the provider its output: mallory takes
  its own output from the provider's tags and sends nothing back.
- ``withhold-done``: as the aggregator of a horizontal FL task, never send the clients ``done``:
  mallory has the model from the secure sums, the clients wait for the end of the training.
- ``withhold-weights``: as the label holder of a vertical-lr task whose weights are opened, take
  its own weights (opened to it first) and keep its share of every other party's: its run ends
  there, and its node fails the task; what the chain answered is appended to
  ``withhold-weights.log`` as ``<task id> <outcome>``.
- ``ignore-status``: run tasks whatever the consortium made of the participants' status (a
  suspended requester's node keeps going).
- ``slow-acks``: answer a provider's frame stream only seconds after it ended, so that a provider
  that waits for that answer before it anchors is still waiting when the task is failed.
- ``gbdt-lies``: as the label holder of a vertical-gbdt task, report every split's gain as its
  own (its result's ``contributions`` give the feature owners nothing), and tell each feature
  owner the number of trees kept that lowers its share of the splits most, among those early
  stopping allows (the file holds the task's ``early_stopping_rounds``): the feature owners hold
  different models.
- ``gbdt-split-brain``: as the label holder of a vertical-gbdt task, show the feature owner whose
  org id the file holds one more split of its own per tree than there is -- it opens one of the
  tree's leaves to that owner alone at an extra level, takes its histograms, asks it for no
  split, and sends it a shape in which the leaf splits -- to lower that owner's share of the
  splits.
- ``log-alignment``: write every id its node learns while aligning the rows of a vertical task
  (what a PSI run or a three-party intersection output to it, and the common ids a peer sent it)
  to ``log-alignment.log``, one id in hex a line: what a requester could keep of an alignment
  whose provider then refuses the task.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np

ATTACKS_ENV = "MALLORY_ATTACKS"
SLOW_ACK_S = 5.0


def _attacking(name: str) -> bool:
    return (Path(os.environ[ATTACKS_ENV]) / name).exists()


def install() -> None:
    from privledger.api.routes import peer
    from privledger.evm.contracts import FailureReason
    from privledger.evm.errors import ChainError, ChainRevert
    from privledger.node import worker

    anchor = worker.Worker._anchor

    def fail_on_chain(self: worker.Worker, task_id: int, attack: str) -> None:
        """Fail the task with mallory's key; what the chain answered goes to the attack's log."""
        try:
            self.node.ledger.tasks.fail_task(task_id, FailureReason.PROTOCOL_ERROR)
            answer = "failed"
        except ChainRevert as exc:
            answer = f"reverted {exc.error}"
        except ChainError as exc:  # e.g. the task closed meanwhile: a revert not decoded
            answer = f"chain error {exc}"
        log = Path(os.environ[ATTACKS_ENV]) / f"{attack}.log"
        with log.open("a") as handle:
            handle.write(f"{task_id} {answer}\n")

    def fail_instead_of_anchoring(self: worker.Worker, task: Any, outcome: Any) -> None:
        if not (_attacking("fail-after-result") and task.requester_org == self.node.org_id):
            anchor(self, task, outcome)
            return
        fail_on_chain(self, task.task_id, "fail-after-result")

    worker.Worker._anchor = fail_instead_of_anchoring  # type: ignore[method-assign]

    fail = worker.Worker._fail

    def fail_logged(self: worker.Worker, task_id: int, reason: Any, message: str) -> None:
        if _attacking("withhold-weights"):
            fail_on_chain(self, task_id, "withhold-weights")
        fail(self, task_id, reason, message)

    worker.Worker._fail = fail_logged  # type: ignore[method-assign]

    check_active = worker.Worker._check_active

    def active_or_not(self: worker.Worker, task: Any) -> None:
        if not _attacking("ignore-status"):
            check_active(self, task)

    worker.Worker._check_active = active_or_not  # type: ignore[method-assign]

    receive = peer.receive_stream

    async def answer_late(*args: Any, **kwargs: Any) -> int:
        count = await receive(*args, **kwargs)
        if _attacking("slow-acks"):
            await asyncio.sleep(SLOW_ACK_S)
        return count

    peer.receive_stream = answer_late  # type: ignore[assignment]
    _withhold_the_providers_output()
    _lie_as_gbdt_label_holder()
    _log_the_alignment()


def _withhold_the_providers_output() -> None:
    """``withhold-reveal``, ``withhold-done`` and ``withhold-weights``."""
    from privledger.protocols.fl import federation, vertical
    from privledger.protocols.psi import kkrt, rr22

    open_to = vertical.open_to

    def keeping_its_shares(party: Any, group: Any, shares: Any, target: int, **kw: Any) -> Any:
        if _attacking("withhold-weights") and party.index != target:
            raise RuntimeError(f"mallory keeps its share of party {target}'s weights")
        return open_to(party, group, shares, target, **kw)

    vertical.open_to = keeping_its_shares

    broadcast = federation._broadcast

    def keeping_done(alive: Any, message: Any) -> None:
        if not (_attacking("withhold-done") and message.get("done")):
            broadcast(alive, message)

    federation._broadcast = keeping_done

    for module in (kkrt, rr22):
        honest = module._run_requester

        def keeping_the_positions(
            channel: Any, keys: Any, peer_size: int, reveal: bool, *rest: Any, _run: Any = honest
        ) -> Any:
            return _run(
                channel, keys, peer_size, reveal and not _attacking("withhold-reveal"), *rest
            )

        module._run_requester = keeping_the_positions  # type: ignore[assignment]


def _lie_as_gbdt_label_holder() -> None:
    """``gbdt-lies`` and ``gbdt-split-brain``."""
    from privledger.protocols.fl import gbdt

    importance = gbdt.LabelHolderModel.party_importance

    def all_gain_mine(self: gbdt.LabelHolderModel) -> Any:
        shares = importance(self)
        if _attacking("gbdt-lies"):
            shares[:] = 0.0
            shares[0] = 1.0
        return shares

    gbdt.LabelHolderModel.party_importance = all_gain_mine  # type: ignore[method-assign]

    send = gbdt._send
    counted: dict[int, list[list[int]]] = {}  # per channel: the owner's and all splits per tree

    def keep_fewer_trees(trees: list[list[int]], kept: int, rounds: int) -> int:
        """The count of trees kept that early stopping allows and lowers the owner's share most."""
        allowed = range(max(1, len(trees) - rounds), kept + 1)
        return min(
            allowed,
            key=lambda k: (sum(o for o, _ in trees[:k]) / max(1, sum(t for _, t in trees[:k])), -k),
        )

    rows_of: dict[int, int] = {}  # per channel: the rows of the last level sent

    def split_one_more_leaf(channel: Any, header: dict[str, Any]) -> dict[str, Any]:
        """Open a leaf of the tree to this feature owner alone; send it a shape splitting it."""
        shape = header["shape"]
        leaf = min(shape["leaves"])
        positions = np.full(rows_of[id(channel)], leaf, dtype="<i4")
        send(channel, "level", {"nodes": [[leaf, -1]]}, positions.tobytes())
        gbdt._recv(channel, ("histograms",), 600.0)
        send(channel, "splits", {"nodes": []})
        gbdt._recv(channel, ("partition",), 600.0)
        leaves = set(shape["leaves"]) - {leaf} | {2 * leaf + 1, 2 * leaf + 2}
        internal = [*shape["internal"], leaf]
        return {**header, "shape": {"internal": sorted(internal), "leaves": sorted(leaves)}}

    def lying_send(channel: Any, kind: str, header: dict[str, Any], body: bytes = b"") -> None:
        if _attacking("gbdt-split-brain"):
            target = int((Path(os.environ[ATTACKS_ENV]) / "gbdt-split-brain").read_text())
            if kind == "level":
                rows_of[id(channel)] = len(body) // 4
            elif kind == "tree_done" and channel._peer_org == target:
                header = split_one_more_leaf(channel, header)
        if _attacking("gbdt-lies"):
            trees = counted.setdefault(id(channel), [[0, 0]])
            if kind == "splits":
                trees[-1][0] += len(header["nodes"])
            elif kind == "tree_done":
                trees[-1][1] = len(header["shape"]["internal"])
                trees.append([0, 0])
            elif kind == "finish":
                rounds = int((Path(os.environ[ATTACKS_ENV]) / "gbdt-lies").read_text())
                kept = keep_fewer_trees(trees[:-1], header["trees"], rounds)
                header = {**header, "trees": kept}
        send(channel, kind, header, body)

    gbdt._send = lying_send


def _log_the_alignment() -> None:
    """``log-alignment``."""
    from privledger.node.runners import fl
    from privledger.protocols.psi import kkrt, multiparty

    def logged(learned: list[bytes]) -> None:
        if _attacking("log-alignment"):
            with (Path(os.environ[ATTACKS_ENV]) / "log-alignment.log").open("a") as handle:
                handle.writelines(f"{key.hex()}\n" for key in learned)

    run_psi, run_intersection, received_ids = (
        kkrt.run_psi,
        multiparty.run_intersection,
        fl._received_ids,
    )

    def psi(*args: Any, **kwargs: Any) -> Any:
        result = run_psi(*args, **kwargs)
        logged(result.intersection)
        return result

    def intersection(*args: Any, **kwargs: Any) -> Any:
        result = run_intersection(*args, **kwargs)
        logged(result.items)
        return result

    def received(*args: Any, **kwargs: Any) -> Any:
        common = received_ids(*args, **kwargs)
        logged(common)
        return common

    kkrt.run_psi = psi
    multiparty.run_intersection = intersection
    fl._received_ids = received


if __name__ == "__main__":
    install()
    from privledger.cli import app

    app(prog_name="privledger")
