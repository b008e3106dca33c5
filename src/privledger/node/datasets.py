"""Local datasets: take in a CSV or Parquet file, describe it (schema, row count), commit to it.

A file comes in as an upload or from the organisation's import directory, never from anywhere
else on the host, and is copied into the node's data directory as it is hashed and parsed. The
file never leaves the node. On chain go the schema hash (keccak256 of the canonical column
list), the row count and a salted content commitment, ``keccak256(salt || sha256(file bytes))``:
the salt keeps a small or guessable file from being confirmed by hashing candidates.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from privledger.evm.hashing import keccak256
from privledger.evm.ledger import Ledger
from privledger.protocols.psi.buckets import column_batches
from privledger.store.models import LocalDataset

MAX_COLUMNS = 1_000
COLUMN_CHUNK_ROWS = 1 << 20
CHUNK_BYTES = 1 << 20  # what a registration reads, hashes and copies at a time
PARQUET_SUFFIXES = {".parquet", ".pq"}
# UTF-8, with or without the byte-order mark Excel writes (else the first column is "\ufeffitem")
CSV_ENCODING = "utf-8-sig"


class DatasetFileError(ValueError):
    """The file is not a usable dataset; the message says why."""


class DatasetTooLarge(DatasetFileError):
    """The file is larger than the node accepts."""


class NotImportable(DatasetFileError):
    """The path names no regular file inside the import directory (one message for every
    reason, so that a refusal tells nothing about the host's files)."""

    def __init__(self) -> None:
        super().__init__(
            "not a file in this organisation's import directory (a path relative to it, "
            "without '..' or symlinks); upload anything else"
        )


class Source(Protocol):
    """What a dataset is read from: an open file, or an upload's body as it arrives."""

    def read(self, size: int, /) -> bytes | None: ...


@dataclass(frozen=True)
class DatasetDescription:
    columns: list[str]
    row_count: int
    schema_hash: bytes
    commitment: bytes
    salt: bytes


def open_import(import_dir: Path, requested: str) -> BinaryIO:
    """Open a file of the organisation's import directory: ``requested`` is relative to it, or
    an absolute path inside it. Every component is opened from its parent's descriptor without
    following symlinks, so no ``..``, link or rename race leads outside the directory, and
    anything but a regular file (a FIFO, a device, a folder) is refused."""
    parts = _parts_inside(import_dir, PurePosixPath(requested))
    try:
        folder = os.open(import_dir, os.O_RDONLY | os.O_DIRECTORY)
    except (OSError, ValueError) as exc:
        raise NotImportable from exc
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        descriptor = os.open(parts[-1], flags, dir_fd=folder)
    except (OSError, ValueError) as exc:  # missing, a link, too long, an embedded NUL, ...
        raise NotImportable from exc
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise NotImportable
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def _parts_inside(import_dir: Path, requested: PurePosixPath) -> tuple[str, ...]:
    if requested.is_absolute():
        # the directory as configured or as it resolves (it may itself be a symlink)
        bases = [
            base for base in (import_dir, import_dir.resolve()) if requested.is_relative_to(base)
        ]
        if not bases:
            raise NotImportable
        requested = requested.relative_to(bases[0])
    if not requested.parts or ".." in requested.parts:
        raise NotImportable
    return requested.parts


def ingest(source: Source, target: Path, *, max_bytes: int | None = None) -> DatasetDescription:
    """Copy ``source`` to ``target`` (a new file; CSV, or Parquet by its suffix) in one pass,
    hashing the bytes and parsing a CSV as they stream through: memory stays bounded whatever
    the size, and the commitment is of the very bytes stored. A refused source leaves no file.
    """
    try:
        with target.open("xb") as sink:
            tee = _Tee(source, sink, max_bytes)
            if target.suffix.lower() in PARQUET_SUFFIXES:
                tee.drain()
                sink.flush()
                rows, schema = _describe_parquet(target)
            else:
                text = io.TextIOWrapper(
                    io.BufferedReader(tee, CHUNK_BYTES), CSV_ENCODING, newline=""
                )
                rows, schema = _describe_csv(text)
                tee.drain()  # a CSV refused part-way is not read further; this one is read whole
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if rows == 0:
        target.unlink()
        raise DatasetFileError("the file has a header but no rows")
    salt = secrets.token_bytes(32)
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
    return DatasetDescription(
        schema["columns"], rows, keccak256(canonical), keccak256(salt + tee.digest.digest()), salt
    )


def register_stored(
    signer: Ledger,
    description: DatasetDescription,
    stored: Path,
    *,
    name: str,
    level: int,
    unit_price: int,
    parents: Sequence[bytes] = (),
    upstream_bps: int = 0,
) -> LocalDataset:
    """Register a stored copy on chain in ``signer``'s name (the copy is removed if that fails)
    and return its row for the node's store, not yet saved."""
    try:
        dataset_id = signer.data.register(
            schema_hash=description.schema_hash,
            commitment=description.commitment,
            row_count=description.row_count,
            level=level,
            unit_price=unit_price,
            parents=parents,
            upstream_bps=upstream_bps,
        )
    except BaseException:  # not on chain: no copy kept for it
        stored.unlink(missing_ok=True)
        raise
    return LocalDataset(
        dataset_id="0x" + dataset_id.hex(),
        name=name,
        path=str(stored),
        columns=description.columns,
        row_count=description.row_count,
        schema_hash="0x" + description.schema_hash.hex(),
        commitment="0x" + description.commitment.hex(),
        salt="0x" + description.salt.hex(),
        level=level,
        unit_price=unit_price,
    )


def stored_path(data_dir: Path, name: str, suffix: str) -> Path:
    """A new file in the node's data directory for a dataset's copy: the committed content
    cannot drift with the original."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir / f"{name}-{secrets.token_hex(4)}{suffix.lower()}"


class _Tee(io.RawIOBase):
    """A reader of ``source`` that hashes, counts and copies to ``sink`` every byte read."""

    def __init__(self, source: Source, sink: BinaryIO, max_bytes: int | None) -> None:
        self._source = source
        self._sink = sink
        self._max_bytes = max_bytes
        self.size = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        if not data:
            return 0
        self.size += len(data)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise DatasetTooLarge(f"a dataset is at most {self._max_bytes} bytes")
        self.digest.update(data)
        self._sink.write(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        buffer = bytearray(CHUNK_BYTES)
        while self.readinto(buffer):
            pass


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


def _describe_csv(handle: TextIO) -> tuple[int, dict[str, Any]]:
    try:
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
