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
from typing import BinaryIO

import numpy as np
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
    """The items of a result file, read a block of lines at a time; more than ``limit`` is
    ``TooManyItems``."""
    with path.open("rb") as handle:
        return _items(handle, limit)


BLOCK_BYTES = 1 << 22  # a reader's block: whole lines of about this many bytes at a time
_QUOTE, _FEED, _BACKSLASH = ord('"'), ord("\n"), ord("\\")


def _items(source: BinaryIO, limit: int | None, block_bytes: int = BLOCK_BYTES) -> list[str]:
    """The items of the lines in ``source``, a block of whole lines at a time: a block whose lines
    are all as :func:`encode` writes an item with no escape -- a quote, text without a quote,
    backslash or control character, a quote and a line feed -- is split in one pass (~50x faster
    than a JSON decoding per line); any other block is read by :func:`_items_by_line`, which
    decides what it holds and where it is wrong."""
    items: list[str] = []
    rest = b""
    while True:
        chunk = source.read(block_bytes)
        block = rest + chunk
        end = block.rfind(b"\n") + 1 if chunk else len(block)  # the last block: what is left
        if not block:
            return items
        lines, rest = block[:end], block[end:]
        if limit is not None and lines.count(b"\n") + len(items) >= limit:
            # the limit ends in this block: its lines up to the limit are read, and the bytes
            # after them (if any) are a line too many
            cut = _after_lines(lines, limit - len(items))
            lines, rest = lines[:cut], lines[cut:] + rest
            items += _block_items(lines, len(items))
            if rest or source.read(1):
                raise TooManyItems(f"more than {limit} items")
            return items
        items += _block_items(lines, len(items))


def _after_lines(lines: bytes, count: int) -> int:
    """The offset just past the first ``count`` line feeds of ``lines`` (all of it if fewer)."""
    feeds = np.flatnonzero(np.frombuffer(lines, np.uint8) == _FEED)
    return (
        int(feeds[count - 1]) + 1 if 0 < count <= len(feeds) else (0 if count <= 0 else len(lines))
    )


def _block_items(lines: bytes, before: int) -> list[str]:
    """The items of whole lines (the last may lack its line feed); ``before`` items came first."""
    if not lines:
        return []
    text = np.frombuffer(lines, np.uint8)
    feeds = np.flatnonzero(text == _FEED)
    starts = np.concatenate(([0], feeds[:-1] + 1))
    plain = (
        len(feeds) > 0
        and int(feeds[-1]) == len(lines) - 1  # every line ends in a line feed
        and bool(np.all(feeds - starts >= 2))  # room for two quotes on each line
        and bool(np.all(text[starts] == _QUOTE))
        and bool(np.all(text[feeds - 1] == _QUOTE))
        and int(np.count_nonzero(text == _QUOTE)) == 2 * len(feeds)  # no quote in an item
        and not bool(np.any((text < 0x20) & (text != _FEED)))  # no control character
        and not bool(np.any(text == _BACKSLASH))  # no escape
    )
    if plain:
        try:
            return lines[1:-2].decode("utf-8").split('"\n"')
        except UnicodeDecodeError:
            pass  # the reading by line says which line is not UTF-8
    return _items_by_line(io.BytesIO(lines), before)


def _items_by_line(lines: Iterable[bytes], before: int = 0) -> list[str]:
    """Lines split at line feeds only (binary reads), each one JSON string; the first is line
    ``before + 1`` of its file."""
    items: list[str] = []
    for number, line in enumerate(lines, before + 1):
        try:
            item = json.loads(line.decode("utf-8"))
            if not isinstance(item, str) or not line.endswith(b"\n"):
                raise ValueError("not a JSON string and a line feed")
            item.encode()  # a lone surrogate escape ("\ud800") is no text
        except ValueError as exc:
            raise ResultFormatError(f"line {number} is not one item as a JSON string") from exc
        items.append(item)
    return items
