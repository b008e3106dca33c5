"""The one format of every task output, whatever the protocol: JSON Lines.

A participant's output is a list of items (text). Its result file -- what ``GET
/tasks/{id}/result/file`` serves and the anchored digest commits to, ``resultDigest =
keccak256(abi.encode(taskId, participant, salt, sha256(file)))`` -- holds each item as one JSON
string, exactly as ``json.dumps(item, ensure_ascii=False)`` writes it (UTF-8), followed by a line
feed, in output order: sorted by code point (= by UTF-8 bytes) for outputs computed in memory,
bucket by bucket (each sorted) for bucketed PSI. No items is the empty file. So every item a CSV
field can hold -- line breaks, Unicode line and record separators, quotes -- is one line, and
splitting on ``\\n`` alone, then decoding each line as JSON, gives the items back exactly.

The bytes come from one encoder, :func:`privledger.protocols.jsonlines.encode`, for the lists
encoded here and the files the PSI runners stream alike; ``GET /tasks/{id}/result`` reads them
with :func:`read`, and the explorer verifies an uploaded file or list of items with :func:`parse`
and :func:`encode`.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa

from privledger.protocols import jsonlines

SUFFIX = ".jsonl"
MEDIA_TYPE = "application/jsonl"


class ResultFormatError(ValueError):
    """Bytes or items that are not a result in this format."""


class TooManyItems(ValueError):
    """A result file with more items than the reader takes."""


def encode(items: Sequence[str]) -> bytes:
    """The result file of ``items``, in the order given."""
    try:
        column = pa.array(items, type=pa.large_string())
    except (UnicodeEncodeError, pa.ArrowException) as exc:
        raise ResultFormatError("every item is UTF-8 text") from exc
    return jsonlines.encode(column)


def path_of(results_dir: Path, task_id: int) -> Path:
    """Where this node keeps its result file of a task (the directory is made if missing)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    return results_dir / f"task-{task_id}{SUFFIX}"


def keep(
    output: list[str] | Path | None, results_dir: Path, task_id: int
) -> tuple[Path | None, bytes]:
    """This party's result file of a task and its SHA-256, what the anchored digest commits to.

    A list of items is sorted and written to :func:`path_of`; a file a runner wrote there in
    this format (a streamed PSI output) is kept as it is; no output has no file, and the
    SHA-256 of the empty output."""
    if isinstance(output, Path):
        digest = hashlib.sha256()
        with output.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return output, digest.digest()
    if output is None:
        return None, hashlib.sha256(b"").digest()
    content = encode(sorted(output))
    path = path_of(results_dir, task_id)
    path.write_bytes(content)
    return path, hashlib.sha256(content).digest()


def parse(content: bytes) -> list[str]:
    """The items of a result file's bytes."""
    return _items(io.BytesIO(content), None)


def read(path: Path, limit: int) -> list[str]:
    """The items of a result file, read line by line; more than ``limit`` is ``TooManyItems``."""
    with path.open("rb") as handle:
        return _items(handle, limit)


def _items(lines: Iterable[bytes], limit: int | None) -> list[str]:
    """Lines split at line feeds only (binary reads), each one JSON string."""
    items: list[str] = []
    for number, line in enumerate(lines, 1):
        if limit is not None and number > limit:
            raise TooManyItems(f"more than {limit} items")
        try:
            item = json.loads(line.decode("utf-8"))
            if not isinstance(item, str) or not line.endswith(b"\n"):
                raise ValueError("not a JSON string and a line feed")
            item.encode()  # a lone surrogate escape ("\ud800") is no text
        except ValueError as exc:
            raise ResultFormatError(f"line {number} is not one item as a JSON string") from exc
        items.append(item)
    return items
