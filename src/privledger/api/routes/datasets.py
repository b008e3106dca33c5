"""Datasets this node holds: register a file on chain (uploaded, or from the organisation's import
directory), list, show."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Query, Request
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from privledger.api.deps import Caller, DataOwner, Member, NodeDep, SessionDep
from privledger.api.errors import ApiError, not_found
from privledger.api.schemas import (
    DatasetIn,
    DatasetOut,
    DatasetTerms,
    DatasetUploadTerms,
    DerivedDatasetIn,
)
from privledger.evm.errors import ChainRevert
from privledger.node.context import NodeContext
from privledger.node.datasets import (
    DatasetFileError,
    DatasetTooLarge,
    NotImportable,
    Source,
    ingest,
    open_import,
    register_stored,
    stored_path,
)
from privledger.node.derived import DeriveError, NotTakenPart, derive_aligned
from privledger.store.models import LocalDataset

router = APIRouter(prefix="/datasets", tags=["datasets"])
UPLOAD_PATH = "/datasets/upload"  # its body is limited by max_upload_bytes, not the JSON limit
UPLOAD_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


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
    """Register a CSV or Parquet file of the organisation's import directory on the node: a copy
    stays on the node, its commitment goes on chain. Nothing outside that directory registers
    (a file elsewhere is uploaded: POST /datasets/upload)."""
    try:
        source = open_import(node.settings.import_dir, body.path)
    except NotImportable as exc:
        raise ApiError(400, "not_importable", str(exc)) from exc
    with source:
        return _register(source, Path(body.path).suffix, body, caller, node, session, None)


@router.post(
    "/upload",
    response_model=DatasetOut,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in UPLOAD_TYPES.values()
            },
        }
    },
)
async def upload_dataset(
    request: Request,
    terms: Annotated[DatasetUploadTerms, Query()],
    caller: DataOwner,
    node: NodeDep,
    session: SessionDep,
) -> DatasetOut:
    """Register a CSV or Parquet file sent as the request body (from any machine): it is hashed,
    parsed and copied onto the node as it streams in, never held whole in memory, and refused
    with a 413 past the node's ``max_upload_bytes``."""
    limit = node.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"a dataset is at most {limit} bytes")
    body = _RequestBody(request.stream())
    return await run_in_threadpool(
        _register, body, f".{terms.format}", terms, caller, node, session, limit
    )


@router.post("/derived", response_model=DatasetOut, status_code=201)
def derive_dataset(body: DerivedDatasetIn, caller: DataOwner, node: NodeDep) -> DatasetOut:
    """Register, as a dataset of its own, the rows of this node's input to a completed set task
    (PSI, three-party intersection, difference) whose key is in the result this node learned:
    its parents on chain are every input of the task, its level the highest of theirs, and
    ``upstreamBps`` of what it earns goes to their owners (docs/derived-datasets.md)."""
    try:
        derived = derive_aligned(
            node,
            node.ledger_for(caller.user.address),
            task_id=body.task_id,
            name=body.name,
            unit_price=body.unit_price,
            upstream_bps=body.upstream_bps,
        )
    except NotTakenPart as exc:
        raise not_found(str(exc)) from exc
    except DeriveError as exc:
        raise ApiError(409, "not_derivable", str(exc)) from exc
    except ChainRevert as exc:
        raise ApiError(409, "chain_revert", str(exc)) from exc
    except DatasetFileError as exc:
        raise ApiError(409, "not_derivable", f"no aligned rows to register: {exc}") from exc
    return _out(derived, retired=False)


def _register(
    source: Source,
    suffix: str,
    terms: DatasetTerms,
    caller: Caller,
    node: NodeContext,
    session: Session,
    max_bytes: int | None,
) -> DatasetOut:
    stored = stored_path(node.settings.data_dir, terms.name, suffix)
    try:
        description = ingest(source, stored, max_bytes=max_bytes)
    except DatasetTooLarge as exc:
        raise ApiError(413, "too_large", str(exc)) from exc
    except DatasetFileError as exc:
        raise ApiError(400, "invalid_dataset", str(exc)) from exc
    row = register_stored(
        node.ledger_for(caller.user.address),
        description,
        stored,
        name=terms.name,
        level=terms.level,
        unit_price=terms.unit_price,
    )
    session.add(row)
    session.commit()
    return _out(row, retired=False)


class _RequestBody(io.RawIOBase):
    """The request's body as a blocking reader for a worker thread: each read waits on the event
    loop for the next chunk the client sends, so the body streams through and is never stored
    whole."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = anyio.from_thread.run(anext, self._chunks)  # type: ignore[arg-type]
            except StopAsyncIteration:
                return 0
            except ClientDisconnect as exc:
                raise DatasetFileError("the upload ended before its body was complete") from exc
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


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
