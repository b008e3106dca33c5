"""Derived datasets (F6, F25): the rows of this organisation's own input to a set task whose key
is in the intersection this node learned, registered on chain as a dataset of its own whose
parents are every input of the task -- so that a later task on the aligned rows pays its
providers, and through ``upstream_bps`` the owners of the data that aligned them, by provenance.

Only a node that learned the intersection can derive (the requester; the provider too when the
task's output was ``both``); the file is written beside the node's other datasets and never
leaves it. The derived dataset's level is the highest of its parents'.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlmodel import Session

from privledger.evm.contracts import TaskStatus
from privledger.evm.ledger import Ledger
from privledger.node import results
from privledger.node.context import NodeContext
from privledger.node.datasets import (
    CSV_ENCODING,
    PARQUET_SUFFIXES,
    ingest,
    register_stored,
    stored_path,
)
from privledger.node.spec import parse_canonical
from privledger.store.models import LocalDataset, LocalTask

# set tasks whose result is a list of keys of the parties' inputs
ALIGNING = frozenset({"ecdh", "kkrt", "rr22", "intersection3", "difference"})
MAX_ALIGNED_KEYS = 10_000_000


class DeriveError(ValueError):
    """The task left nothing this node may derive a dataset from."""


class NotTakenPart(DeriveError):
    """This node holds no record of the task."""


def derive_aligned(
    node: NodeContext,
    signer: Ledger,
    *,
    task_id: int,
    name: str,
    unit_price: int,
    upstream_bps: int,
) -> LocalDataset:
    """Register the rows of this node's input to set task ``task_id`` whose key is in the
    result this node learned; ``signer`` is the data owner's ledger."""
    with Session(node.engine) as session:
        row = session.get(LocalTask, task_id)
    if row is None or row.spec_json is None:
        raise NotTakenPart(f"task {task_id} on this node")
    spec = parse_canonical(row.spec_json.encode())
    mine = next((item for item in spec.inputs if item.org == node.org_id), None)
    if spec.protocol not in ALIGNING or getattr(spec, "output", None) == "size":
        raise DeriveError(f"task {task_id} ({spec.protocol}) released no keys to align rows by")
    if mine is None or row.result_path is None:
        raise DeriveError(f"this node learned no result of task {task_id} with an input of its own")
    status = node.ledger.tasks.get_task(task_id).status
    if status not in (TaskStatus.COMPLETED, TaskStatus.SETTLED):
        raise DeriveError(f"task {task_id} is {status.name.lower()}, not completed")
    with Session(node.engine) as session:
        own = session.get(LocalDataset, mine.dataset.lower())
    if own is None:
        raise DeriveError(f"dataset {mine.dataset} is not on this node")
    keys = set(results.read(Path(row.result_path), limit=MAX_ALIGNED_KEYS))
    source = Path(own.path)
    stored = stored_path(node.settings.data_dir, name, source.suffix)
    description = ingest(_aligned_rows(source, mine.column, keys), stored)
    parents = list(dict.fromkeys(bytes.fromhex(item.dataset[2:]) for item in spec.inputs))
    level = max(node.ledger.data.get_dataset(parent).level for parent in parents)
    derived = register_stored(
        signer,
        description,
        stored,
        name=name,
        level=level,
        unit_price=unit_price,
        parents=parents,
        upstream_bps=upstream_bps,
    )
    with Session(node.engine) as session:
        session.add(derived)
        session.commit()
        session.refresh(derived)
    return derived


def _aligned_rows(path: Path, column: str, keys: set[str]) -> io.BytesIO:
    """The file's rows whose ``column`` is one of ``keys``, in its format (CSV or Parquet)."""
    sink = io.BytesIO()
    if path.suffix.lower() in PARQUET_SUFFIXES:
        table = pq.read_table(path)
        values = pc.cast(table[column], pa.string())
        pq.write_table(table.filter(pc.is_in(values, value_set=pa.array(sorted(keys)))), sink)
    else:
        with path.open(encoding=CSV_ENCODING, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            at = [name.strip() for name in header].index(column)
            text = io.TextIOWrapper(sink, "utf-8", newline="", write_through=True)
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(line for line in reader if line[at] in keys)
            text.detach()
    sink.seek(0)
    return sink
