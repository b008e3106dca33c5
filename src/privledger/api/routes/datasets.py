"""Datasets this node holds: register a local file on chain, list, show."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from sqlmodel import col, select

from privledger.api.deps import DataOwner, Member, NodeDep, SessionDep
from privledger.api.errors import ApiError, not_found
from privledger.api.schemas import DatasetIn, DatasetOut
from privledger.node.datasets import DatasetFileError, describe, store_copy
from privledger.store.models import LocalDataset

router = APIRouter(prefix="/datasets", tags=["datasets"])


def _out(row: LocalDataset, retired: bool) -> DatasetOut:
    return DatasetOut(
        dataset_id=row.dataset_id,
        name=row.name,
        columns=row.columns,
        row_count=row.row_count,
        level=row.level,
        unit_price=row.unit_price,
        schema_hash=row.schema_hash,
        commitment=row.commitment,
        retired=retired,
    )


@router.post("", response_model=DatasetOut, status_code=201)
def register_dataset(
    body: DatasetIn, caller: DataOwner, node: NodeDep, session: SessionDep
) -> DatasetOut:
    """Register a CSV file on this node's disk: the file stays, its commitment goes on chain."""
    source = Path(body.path)
    try:
        description = describe(source)
    except DatasetFileError as exc:
        raise ApiError(400, "invalid_dataset", str(exc)) from exc
    if description.row_count == 0:
        raise ApiError(400, "invalid_dataset", "the file has a header but no rows")
    stored = store_copy(source, node.settings.data_dir, body.name)
    dataset_id = node.ledger_for(caller.user.address).data.register(
        schema_hash=description.schema_hash,
        commitment=description.commitment,
        row_count=description.row_count,
        level=body.level,
        unit_price=body.unit_price,
    )
    row = LocalDataset(
        dataset_id="0x" + dataset_id.hex(),
        name=body.name,
        path=str(stored),
        columns=description.columns,
        row_count=description.row_count,
        schema_hash="0x" + description.schema_hash.hex(),
        commitment="0x" + description.commitment.hex(),
        salt="0x" + description.salt.hex(),
        level=body.level,
        unit_price=body.unit_price,
    )
    session.add(row)
    session.commit()
    return _out(row, retired=False)


@router.get("", response_model=list[DatasetOut])
def list_datasets(_caller: Member, node: NodeDep, session: SessionDep) -> list[DatasetOut]:
    """The datasets this node holds, with their on-chain retirement state."""
    rows = session.exec(select(LocalDataset).order_by(col(LocalDataset.created_at))).all()
    data = node.ledger.data
    return [_out(row, data.get_dataset(bytes.fromhex(row.dataset_id[2:])).retired) for row in rows]


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, _caller: Member, node: NodeDep, session: SessionDep) -> DatasetOut:
    row = session.get(LocalDataset, dataset_id.lower())
    if row is None:
        raise not_found(f"dataset {dataset_id} on this node")
    return _out(row, node.ledger.data.get_dataset(bytes.fromhex(row.dataset_id[2:])).retired)
