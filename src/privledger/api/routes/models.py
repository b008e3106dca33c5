"""Model governance (F11, F18): register a trained model as a data asset on chain, list models,
and read the log of prediction calls with Merkle proofs. Prediction itself is a task
(``"kind": "fl"``, ``"protocol": "predict"`` for a horizontal model, ``"vertical-predict"`` for
a vertical one -- logistic regression or boosted trees -- whose parts stay with its parties)
authorised by an FL grant on the model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlmodel import col, select

from privledger.api.deps import DataOwner, Member, NodeDep, SessionDep, TaskId
from privledger.api.errors import ApiError, not_found
from privledger.api.routes.services import entry_proof, log_entries
from privledger.api.schemas import CallLogOut, ModelIn, ModelOut
from privledger.evm.errors import ChainRevert
from privledger.node.context import NodeContext
from privledger.node.models import ModelError, register_model
from privledger.store.models import LocalModel
from privledger.wire.assets import ProofOut

router = APIRouter(prefix="/models", tags=["models"])


def _out(node: NodeContext, model: LocalModel) -> ModelOut:
    asset = node.ledger.data.get_dataset(bytes.fromhex(model.model_id[2:]))
    return ModelOut(
        model_id=model.model_id,
        name=model.name,
        task_id=model.task_id,
        protocol=model.protocol,
        features=model.features,
        model_hash=model.model_hash,
        level=model.level,
        unit_price=asset.unit_price,
        parents=["0x" + parent.hex() for parent in asset.parents],
        retired=asset.retired,
    )


def _model(session: SessionDep, name: str) -> LocalModel:
    model = session.exec(select(LocalModel).where(LocalModel.name == name)).first()
    if model is None:
        raise not_found(f"model {name!r}")
    return model


@router.post("", response_model=ModelOut, status_code=201)
def register(body: ModelIn, caller: DataOwner, node: NodeDep) -> ModelOut:
    """Register the model of a completed FL task this organisation requested: a horizontal model
    it aggregated (its hash committed on chain), or a vertical model whose parts stay with its
    parties (vertical-lr kept shared, vertical-gbdt: the binding of every party's commitment to
    its part); its training datasets become its parents, its level the highest of theirs."""
    try:
        model = register_model(
            node,
            node.ledger_for(caller.user.address),
            task_id=body.task_id,
            name=body.name,
            unit_price=body.unit_price,
            upstream_bps=body.upstream_bps,
        )
    except ModelError as exc:
        raise ApiError(409, "not_a_model", str(exc)) from exc
    except ChainRevert as exc:
        raise ApiError(409, "chain_revert", str(exc)) from exc
    return _out(node, model)


@router.get("", response_model=list[ModelOut])
def list_models(_caller: Member, node: NodeDep, session: SessionDep) -> list[ModelOut]:
    rows = session.exec(select(LocalModel).order_by(col(LocalModel.created_at)))
    return [_out(node, row) for row in rows]


@router.get("/{name}", response_model=ModelOut)
def show_model(name: str, _caller: Member, node: NodeDep, session: SessionDep) -> ModelOut:
    return _out(node, _model(session, name))


@router.get("/{name}/calls", response_model=list[CallLogOut])
def prediction_log(name: str, _caller: DataOwner, session: SessionDep) -> list[CallLogOut]:
    """Every prediction call of the model (run or refused), with its anchoring batch."""
    return log_entries(session, f"model:{_model(session, name).name}")


@router.get("/{name}/calls/{task_id}/proof", response_model=ProofOut)
def prediction_proof(
    name: str, task_id: TaskId, _caller: Member, node: NodeDep, session: SessionDep
) -> dict[str, Any]:
    """The Merkle inclusion proof of one prediction call against the chain."""
    return entry_proof(node, session, f"model:{_model(session, name).name}", task_id)
