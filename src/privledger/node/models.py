"""Model governance: a model trained by horizontal FL becomes a data asset on chain.

The requester of a completed horizontal FL task (the aggregator, which holds the model) registers
it with :func:`register_model`: the model file's sha256 goes on chain inside the asset's salted
commitment, its training datasets become the asset's parents (so prediction fees pass
``upstream_bps`` to their owners, F6), and its classification level is the highest of theirs.
Using the model for prediction is then an FL grant on the asset like any other; every prediction
call is logged in the node's call log and anchored in Merkle batches (see
:mod:`privledger.node.services`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from sqlmodel import Session, select

from privledger.evm.contracts import TaskStatus
from privledger.evm.hashing import keccak256
from privledger.evm.ledger import Ledger
from privledger.node import results
from privledger.node.context import NodeContext
from privledger.node.spec import HORIZONTAL_PROTOCOLS, parse_canonical
from privledger.store.models import LocalModel, LocalTask

MODEL_SCHEMA = "privledger/model/v1"


class ModelError(ValueError):
    """The task's result cannot be registered as a model; the message says why."""


def register_model(
    node: NodeContext,
    signer: Ledger,
    *,
    task_id: int,
    name: str,
    unit_price: int,
    upstream_bps: int,
) -> LocalModel:
    """Register the model a completed horizontal FL task produced here; ``signer`` is the data
    owner's ledger (the asset is registered in their name)."""
    with Session(node.engine) as session:
        row = session.get(LocalTask, task_id)
        taken = session.exec(
            select(LocalModel).where((LocalModel.task_id == task_id) | (LocalModel.name == name))
        ).first()
    if row is None or row.spec_json is None or row.result_path is None:
        raise ModelError(f"task {task_id} left no model on this node")
    spec = parse_canonical(row.spec_json.encode())
    if spec.protocol not in HORIZONTAL_PROTOCOLS or spec.requester != node.org_id:
        raise ModelError(f"task {task_id} is not a horizontal FL task this organisation ran")
    status = node.ledger.tasks.get_task(task_id).status
    if status not in (TaskStatus.COMPLETED, TaskStatus.SETTLED):
        raise ModelError(f"task {task_id} is {status.name.lower()}, not completed")
    if taken is not None:
        raise ModelError(f"a model named {name!r} or from task {task_id} is registered already")
    (output,) = results.read(Path(row.result_path), limit=1)
    model = json.loads(output)
    content = json.dumps(model, sort_keys=True, separators=(",", ":")).encode()
    model_hash = hashlib.sha256(content).digest()
    salt = secrets.token_bytes(32)
    parents = [bytes.fromhex(item.dataset[2:]) for item in spec.inputs]
    level = max(node.ledger.data.get_dataset(parent).level for parent in parents)
    schema = {"format": MODEL_SCHEMA, "protocol": spec.protocol, "features": model["features"]}
    model_id = signer.data.register(
        schema_hash=keccak256(json.dumps(schema, sort_keys=True).encode()),
        commitment=keccak256(salt + model_hash),
        row_count=int(model["rows"]),
        level=level,
        unit_price=unit_price,
        parents=parents,
        upstream_bps=upstream_bps,
    )
    node.settings.results_dir.mkdir(parents=True, exist_ok=True)
    path = node.settings.results_dir / f"model-{task_id}.json"
    path.write_bytes(content)
    stored = LocalModel(
        model_id="0x" + model_id.hex(),
        name=name,
        task_id=task_id,
        protocol=spec.protocol,
        path=str(path),
        features=list(model["features"]),
        model_hash="0x" + model_hash.hex(),
        salt="0x" + salt.hex(),
        level=level,
        unit_price=str(unit_price),
    )
    with Session(node.engine) as session:
        session.add(stored)
        session.commit()
        session.refresh(stored)
    return stored
