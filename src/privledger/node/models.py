"""Model governance: a trained model becomes a data asset on chain.

The requester of a completed FL task registers its model with :func:`register_model`; the
model's training datasets become the asset's parents (so prediction fees pass ``upstream_bps``
to their owners, F6), and its classification level is the highest of theirs.

- Horizontal FL: the aggregator holds the model; the model file's sha256 goes on chain inside the
  asset's salted commitment. Prediction is a ``predict`` task.
- Vertical LR: the model stays secret-shared between the training parties, each keeping its
  shares with a salted commitment to them, exchanged during training
  (:func:`privledger.protocols.fl.vertical.commit_parts`). Every party computes the same
  :func:`vertical_model_hash` over every party's commitment, and the asset's commitment is its
  keccak256, so each party checks that the registered model binds its own part before it
  predicts. The label holder registers it (it holds the labels and the intercept); prediction
  is a ``vertical-predict`` task on the asset, which keeps the model shared
  (:mod:`privledger.protocols.fl.joint`).
- Vertical GBDT: each party keeps its part (its splits; the leaf values at the label holder) with
  a salted sha256 commitment to it, exchanged at the end of training; :func:`gbdt_model_hash`
  binds every party's commitment, registered and checked as for vertical LR. The merged model
  exists only if the training task exported it (``output: model``, every data owner's terms
  consenting), at the label holder.

Using the model is then an FL grant on the asset whose terms name the protocol, the outputs
(``scores`` or ``ids``) and the price; every prediction call is logged in the model owner's call
log and anchored in Merkle batches (see :mod:`privledger.node.services`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from pathlib import Path

from sqlmodel import Session, select

from privledger.evm.contracts import TaskStatus
from privledger.evm.hashing import keccak256
from privledger.evm.ledger import Ledger
from privledger.node import results
from privledger.node.context import NodeContext
from privledger.node.spec import (
    HORIZONTAL_PROTOCOLS,
    VerticalGbdtSpec,
    VerticalLrSpec,
    parse_canonical,
)
from privledger.store.models import LocalModel, LocalTask

MODEL_SCHEMA = "privledger/model/v1"
VERTICAL_MODEL_SCHEMA = "privledger/vertical-model/v1"
GBDT_MODEL_SCHEMA = "privledger/vertical-gbdt-model/v1"


def vertical_model_hash(task_id: int, spec: VerticalLrSpec, part: dict[str, object]) -> bytes:
    """The sha256 binding a shared vertical model: its task, parties and their columns, and
    every party's commitment to its shares (equal at every party)."""
    fields = {key: part[key] for key in ("widths", "frac_bits", "commitments")}
    return _binding(VERTICAL_MODEL_SCHEMA, task_id, spec, fields)


def gbdt_model_hash(task_id: int, spec: VerticalGbdtSpec, commitments: list[str]) -> bytes:
    """The sha256 binding a vertical GBDT: its task, parties and their columns, the training
    parameters and every party's commitment to its part (equal at every party)."""
    fields = {"params": spec.gbdt.model_dump(mode="json"), "commitments": commitments}
    return _binding(GBDT_MODEL_SCHEMA, task_id, spec, fields)


def _binding(
    schema: str, task_id: int, spec: VerticalLrSpec | VerticalGbdtSpec, fields: Mapping[str, object]
) -> bytes:
    document = {
        "format": schema,
        "task": task_id,
        "parties": [item.org for item in spec.inputs],
        "features": [list(item.features or ()) for item in spec.inputs],
        "label_holder": spec.requester,
        **fields,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).digest()


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
    """Register the model a completed FL task requested here produced (horizontal, or a vertical
    model kept shared); ``signer`` is the data owner's ledger (the asset is registered in their
    name)."""
    with Session(node.engine) as session:
        row = session.get(LocalTask, task_id)
        taken = session.exec(
            select(LocalModel).where((LocalModel.task_id == task_id) | (LocalModel.name == name))
        ).first()
    if row is None or row.spec_json is None or row.result_path is None:
        raise ModelError(f"task {task_id} left no model on this node")
    spec = parse_canonical(row.spec_json.encode())
    vertical = isinstance(spec, VerticalLrSpec | VerticalGbdtSpec)
    if not (vertical or spec.protocol in HORIZONTAL_PROTOCOLS) or spec.requester != node.org_id:
        raise ModelError(f"task {task_id} is not an FL task this organisation requested")
    status = node.ledger.tasks.get_task(task_id).status
    if status not in (TaskStatus.COMPLETED, TaskStatus.SETTLED):
        raise ModelError(f"task {task_id} is {status.name.lower()}, not completed")
    if taken is not None:
        raise ModelError(f"a model named {name!r} or from task {task_id} is registered already")
    (output,) = results.read(Path(row.result_path), limit=1)
    model = json.loads(output)
    parents = [bytes.fromhex(item.dataset[2:]) for item in spec.inputs]
    level = max(node.ledger.data.get_dataset(parent).level for parent in parents)
    if isinstance(spec, VerticalLrSpec | VerticalGbdtSpec):
        if "model_hash" not in model:
            raise ModelError(f"task {task_id} released its weights; it left no shared model")
        if any(item.features for item in spec.inputs if item.org == node.org_id):
            raise ModelError(
                "a vertical model is registered by a label holder holding no feature column "
                "(its part is the model input of a prediction, which brings no rows)"
            )
        model_hash = bytes.fromhex(model["model_hash"][2:])
        salt, commitment = b"", keccak256(model_hash)
        features = [list(item.features or ()) for item in spec.inputs]
        content = json.dumps(
            {"format": VERTICAL_MODEL_SCHEMA, "task": task_id, "features": features},
            sort_keys=True,
        ).encode()
        schema = {"format": VERTICAL_MODEL_SCHEMA, "protocol": spec.protocol, "features": features}
        rows = int(model["aligned"])
        listed = [name for names in features for name in names]
    else:
        content = json.dumps(model, sort_keys=True, separators=(",", ":")).encode()
        model_hash = hashlib.sha256(content).digest()
        salt = secrets.token_bytes(32)
        commitment = keccak256(salt + model_hash)
        schema = {"format": MODEL_SCHEMA, "protocol": spec.protocol, "features": model["features"]}
        rows = int(model["rows"])
        listed = list(model["features"])
    model_id = signer.data.register(
        schema_hash=keccak256(json.dumps(schema, sort_keys=True).encode()),
        commitment=commitment,
        row_count=rows,
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
        features=listed,
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
