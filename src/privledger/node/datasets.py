"""Local datasets: read a CSV or Parquet file, describe it (schema hash, row count), commit to it.

The file never leaves the node. On chain go the schema hash (keccak256 of the canonical column
list), the row count and a salted content commitment, ``keccak256(salt || sha256(file bytes))``:
the salt keeps a small or guessable file from being confirmed by hashing candidates.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from privledger.evm.hashing import keccak256
from privledger.protocols.psi.buckets import column_batches

MAX_COLUMNS = 1_000
COLUMN_CHUNK_ROWS = 1 << 20
PARQUET_SUFFIXES = {".parquet", ".pq"}
# UTF-8, with or without the byte-order mark Excel writes (else the first column is "\ufeffitem")
CSV_ENCODING = "utf-8-sig"


class DatasetFileError(ValueError):
    """The file is not a usable dataset; the message says why."""


@dataclass(frozen=True)
class DatasetDescription:
    columns: list[str]
    row_count: int
    schema_hash: bytes
    commitment: bytes
    salt: bytes


def describe(path: Path) -> DatasetDescription:
    """Validate a dataset file (CSV with a header row, or Parquet) and describe it."""
    try:
        if not path.is_file():
            raise DatasetFileError(f"no file at {path}")
        reader = _describe_parquet if path.suffix.lower() in PARQUET_SUFFIXES else _describe_csv
        rows, schema = reader(path)
        digest = hashlib.sha256(path.read_bytes()).digest()
    except (OSError, ValueError) as exc:  # name too long, unreadable, embedded NUL, ...
        if isinstance(exc, DatasetFileError):
            raise
        raise DatasetFileError(f"cannot read {str(path)[:200]!r}: {exc}") from exc
    salt = secrets.token_bytes(32)
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
    return DatasetDescription(
        schema["columns"], rows, keccak256(canonical), keccak256(salt + digest), salt
    )


def _describe_parquet(path: Path) -> tuple[int, dict[str, Any]]:
    try:
        metadata = pq.ParquetFile(path).metadata
    except (OSError, pa.ArrowException) as exc:
        raise DatasetFileError(f"not a readable Parquet file: {exc}") from exc
    arrow_schema = metadata.schema.to_arrow_schema()
    columns = [field.name for field in arrow_schema]
    if not columns or len(columns) > MAX_COLUMNS:
        raise DatasetFileError("a dataset has 1 to 1000 columns")
    types = [str(field.type) for field in arrow_schema]
    return int(metadata.num_rows), {"format": "parquet", "columns": columns, "types": types}


def _describe_csv(path: Path) -> tuple[int, dict[str, Any]]:
    try:
        with path.open(newline="", encoding=CSV_ENCODING) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise DatasetFileError("the file has no header row")
            columns = [name.strip() for name in header]
            if len(columns) > MAX_COLUMNS or any(not name for name in columns):
                raise DatasetFileError("every column needs a name (at most 1000 columns)")
            if len(set(columns)) != len(columns):
                raise DatasetFileError("column names must be unique")
            rows = 0
            for line_number, row in enumerate(reader, start=2):
                if len(row) != len(columns):
                    raise DatasetFileError(
                        f"line {line_number} has {len(row)} fields, the header {len(columns)}"
                    )
                rows += 1
    except UnicodeDecodeError as exc:
        raise DatasetFileError(f"the file is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise DatasetFileError(f"malformed CSV: {exc}") from exc
    return rows, {"format": "csv", "columns": columns}


def store_copy(source: Path, data_dir: Path, name: str) -> Path:
    """Copy the file into the node's data directory so the committed content cannot drift."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / f"{name}-{secrets.token_hex(4)}{source.suffix.lower()}"
    shutil.copyfile(source, target)
    return target


def read_key_column(path: Path, column: str) -> Any:
    """One column as an Arrow ``large_binary`` array in file order, read as :func:`read_rows`
    reads it (Parquet nulls skipped) but without a Python object per value: the input of set
    protocols that take Arrow columns, of any size that fits in memory."""
    try:
        batches = list(column_batches(path, column, COLUMN_CHUNK_ROWS))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetFileError(f"cannot read column {column!r} of {path.name}: {exc}") from exc
    return pa.concat_arrays(batches) if batches else pa.array([], type=pa.large_binary())


def read_column(path: Path, column: str) -> list[bytes]:
    """The values of one column as UTF-8 text, in file order (nulls skipped in Parquet)."""
    return [row[0] for row in read_rows(path, [column])]


def read_rows(path: Path, columns: list[str]) -> list[tuple[bytes, ...]]:
    """Rows of the given columns as UTF-8 text, in file order (Parquet rows with a null skipped)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            table = pq.read_table(path, columns=columns)
        except (KeyError, pa.ArrowException) as exc:
            raise DatasetFileError(f"no column {', '.join(columns)!r} in {path.name}") from exc
        lists = [table.column(name).to_pylist() for name in columns]
        return [
            tuple(str(value).encode() for value in row)
            for row in zip(*lists, strict=True)
            if all(value is not None for value in row)
        ]
    with path.open(newline="", encoding=CSV_ENCODING) as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]  # named as _describe_csv names them
        missing = [name for name in columns if name not in header]
        if missing:
            raise DatasetFileError(f"no column {missing[0]!r} in {path.name}")
        if len(columns) == 1:  # the common case (a key column), without a per-row inner loop
            index = header.index(columns[0])
            return [(row[index].encode(),) for row in reader if row]  # blank lines skipped
        indices = [header.index(name) for name in columns]
        return [tuple(row[index].encode() for index in indices) for row in reader if row]
