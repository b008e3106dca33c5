"""Bucketed, streamed KKRT PSI for sets far larger than memory (10^8 rows per side).

Design (ours; bucketing by a public hash as in the "hashing to bins" step of Pinkas, Schneider,
Zohner, "Scalable Private Set Intersection Based on OT Extension", ACM TOPS 2018, Sec. 4):

1. **Partition.** Each party reads one column of its CSV or Parquet file in chunks with pyarrow
   (never the whole file) and appends every non-null value to bucket file
   ``b = (AES_K(k(x))[0..4] as little-endian u32 * B) >> 32`` where ``k(x)`` is the item key of
   :func:`.cuckoo.item_keys` and ``K`` the 16-byte *partition key*, public and equal on both
   sides (given by the caller, e.g. derived from the task id, or drawn by side ``a`` and sent in
   the clear). Equal items land in equal buckets, so the intersection is the union of the
   per-bucket intersections and duplicates never cross buckets.
2. **Header.** One JSON header each way (side ``a`` first): protocol, version, role, output
   mode, ``B``, a fingerprint of ``K``, the party's row count and its *bucket size* ``T``: the
   largest number of rows in any of its buckets. Every bucket is padded to ``T`` items with
   random dummy keys (:func:`.cuckoo.dummy_keys`, never equal to an item key), so the peer
   learns ``T`` but not the per-bucket sizes.
3. **One OPRF setup** (IKNP to 512 OTs and the code key, :func:`.kkrt.setup_requester`) for all
   buckets: bucket ``b`` uses bins ``b * m .. (b + 1) * m`` (``m = table_size(T_R)``) of one
   KKRT OPRF instance, so no bin index, PRG position or hash tweak is ever used twice.
4. **Per bucket** a KKRT PSI exactly as in :mod:`.kkrt` steps 2, 4-7 (cuckoo seed, ``u``, three
   tag lists in a secret random order, matched positions with ``reveal_to_provider``), tag
   length ``tag_bytes(B T_R, B T_P)``, so the false-match chance summed over all buckets stays
   ``<= 2^-40``.

**Concurrency.** One ordered channel, used only by the calling thread, turn-based in groups of
``W = max(1, workers)`` buckets::

    R -> P   [matched positions of group g-1,]  seed_b, u_b  for b in group g
    P -> R   tags_b for b in group g

so the transcript hash is equal on both ends. The CPU work runs in a pool of ``workers``
processes (``forkserver``; ``workers=0`` runs inline): the requester's pool builds cuckoo tables and
encodes ``u`` for up to ``2 W`` buckets ahead while the main thread sends, and matches tag lists
while the next group is in flight; the provider's pool evaluates the ``W`` buckets of a group in
parallel. A caller may hand in its own :class:`~concurrent.futures.Executor` instead, e.g. a
Ray cluster (:mod:`privledger.node.compute`): the same tasks then run on its workers, which must
be able to read this party's bucket files by path. Each party partitions before the header
exchange, so ``timeout`` must cover the difference between the two parties' partitioning times
(about 1.5 s per 10^6 rows here).

**Memory** per party: one input chunk while partitioning (``chunk_rows``), then about
``(W + 2 W) * T * ~250`` bytes for the buckets in flight -- independent of the file size
(measured: 10^8 rows per side, ``B = 200`` so ``T ~ 502,000``, ``W = 2``: 1.3 GB peak for a
party's whole process tree; 10^7 rows with ``B = 20``: the same). The
intersection is streamed to ``out`` (JSON Lines, :mod:`privledger.protocols.jsonlines`; or
Parquet if ``out`` ends in ``.parquet``) in bucket order, sorted within a bucket; the result
carries its SHA-256 digest:
``SHA-256(DIGEST_DOMAIN || SHA-256(lengths as 8-byte big-endian) || SHA-256(item bytes))``.

Security model and leakage: those of :mod:`.kkrt` (semi-honest, kappa = 128, lambda = 40),
plus, to the peer: the number of buckets ``B``, the partition key (public), this party's row
count (rows read, before de-duplication) and its bucket size ``T`` (the largest bucket's row
count). With ``reveal_to_provider`` both parties write the same output.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import multiprocessing
import secrets
import shutil
import socket
import struct
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privledger.protocols import jsonlines
from privledger.protocols.channel import (
    Channel,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    recv_exact,
    recv_records,
    send_records,
)
from privledger.protocols.psi import cuckoo, keyed, kkrt, ot
from privledger.protocols.psi.common import (
    PsiHandshakeError,
    Role,
    check_role,
    random_permutation,
)

logger = logging.getLogger(__name__)

PROTOCOL = "privledger/kkrt-bucketed-psi"
VERSION = 2  # 2: base OTs on secp256k1
KEY_BYTES = 16
DIGEST_DOMAIN = b"privledger/bucketed-psi/output/v1"
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_BUCKETS = 1 << 16

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

__all__ = [
    "BucketedResult",
    "Partition",
    "SocketChannel",
    "bucket_of",
    "partition",
    "process_pool",
    "read_bucket",
    "run_bucketed_psi",
]


@dataclass(frozen=True)
class BucketedResult:
    """Outcome for one party. ``matched`` and ``output_sha256`` are set when it learned the
    output (the requester, or both with ``reveal_to_provider``); ``output`` is then the file."""

    role: Role
    buckets: int
    rows: int
    distinct: int
    bucket_size: int
    peer_rows: int
    peer_bucket_size: int
    learned_output: bool
    matched: int
    output: Path | None
    output_sha256: str | None
    partition_seconds: float
    seconds: float
    bytes_sent: int


# --- partitioning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """Bucket files of one party: ``paths[b]`` (Arrow IPC stream, one ``large_binary`` column)
    holds ``rows[b]`` rows."""

    paths: list[Path]
    rows: list[int]

    @property
    def total(self) -> int:
        return sum(self.rows)


def bucket_of(keys: U8, partition_key: bytes, buckets: int) -> npt.NDArray[np.uint32]:
    """The bucket of each item key: ``(AES_K(key) low 32 bits * buckets) >> 32``."""
    if len(partition_key) != KEY_BYTES:
        raise ValueError("the partition key must be 16 bytes")
    n = len(keys)
    buf = np.empty(n * KEY_BYTES + KEY_BYTES, dtype=np.uint8)
    encryptor = Cipher(algorithms.AES(partition_key), modes.ECB()).encryptor()
    encryptor.update_into(np.ascontiguousarray(keys).reshape(-1).data, buf.data)
    words = buf[: n * KEY_BYTES].view("<u4")[::4].astype(np.uint64)
    return ((words * np.uint64(buckets)) >> np.uint64(32)).astype(np.uint32)


def column_batches(source: Path, column: str, chunk_rows: int) -> Iterator[Any]:
    """The column's non-null values as ``large_binary`` arrays of about ``chunk_rows`` rows.

    CSV is read as :mod:`csv` reads it: header names stripped of surrounding blanks, quoted
    values may hold line breaks, values are kept as written (UTF-8 text)."""
    if source.suffix.lower() in PARQUET_SUFFIXES:
        try:
            parquet = pq.ParquetFile(source)
            if column not in parquet.schema_arrow.names:
                raise KeyError(f"no column {column!r}")
            batches = parquet.iter_batches(batch_size=chunk_rows, columns=[column])
            for batch in batches:
                values = batch.column(0)
                if not (pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type)):
                    values = values.cast(pa.large_string())
                yield values.drop_null().cast(pa.large_binary())
        except (KeyError, pa.ArrowException) as exc:
            raise ValueError(f"cannot read column {column!r} of {source.name}: {exc}") from exc
        return
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            names = [name.strip() for name in next(csv.reader(handle), [])]
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(
                block_size=max(1 << 20, 16 * chunk_rows), column_names=names, skip_rows=1
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                include_columns=[column], column_types={column: pa.large_string()}
            ),
        )
        for batch in reader:
            yield batch.column(0).cast(pa.large_binary())
    except (KeyError, pa.ArrowException) as exc:
        raise ValueError(f"cannot read column {column!r} of {source.name}: {exc}") from exc


def partition(
    source: Path,
    column: str,
    directory: Path,
    *,
    buckets: int,
    partition_key: bytes,
    chunk_rows: int = 1 << 20,
) -> Partition:
    """Stream ``source``'s ``column`` into ``buckets`` bucket files under ``directory``."""
    if not 1 <= buckets <= MAX_BUCKETS:
        raise ValueError(f"buckets must be in 1..{MAX_BUCKETS}")
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"bucket-{b:05d}.arrow" for b in range(buckets)]
    schema = pa.schema([("item", pa.large_binary())])
    rows = np.zeros(buckets, dtype=np.int64)
    sinks = [pa.OSFile(str(path), "wb") for path in paths]
    writers = [ipc.new_stream(sink, schema) for sink in sinks]
    try:
        for values in column_batches(source, column, chunk_rows):
            if len(values) == 0:
                continue
            keys = cuckoo.item_keys(*cuckoo.arrow_buffers(values), keyed.ITEM_KEY_DOMAIN)
            target = bucket_of(keys, partition_key, buckets)
            order = np.argsort(target, kind="stable")
            counts = np.bincount(target, minlength=buckets)
            grouped = values.take(pa.array(order))
            start = 0
            for b in np.flatnonzero(counts).tolist():
                count = int(counts[b])
                writers[b].write_batch(
                    pa.record_batch([grouped.slice(start, count)], schema=schema)
                )
                start += count
            rows += counts
    finally:
        for writer in writers:
            writer.close()
        for sink in sinks:
            sink.close()
    return Partition(paths, rows.tolist())


def read_bucket(path: Path) -> Any:
    """The items of one bucket file as one ``large_binary`` array."""
    with pa.memory_map(str(path)) as source:
        table = ipc.open_stream(source).read_all()
    column = table.column(0)
    if column.num_chunks == 0:
        return pa.array([], type=pa.large_binary())
    return column.combine_chunks()


def _bucket_keys(path: Path) -> tuple[Any, U8, I64]:
    """A bucket's items, the keys of its distinct items and their first indices."""
    items = read_bucket(path)
    keys = cuckoo.item_keys(*cuckoo.arrow_buffers(items), keyed.ITEM_KEY_DOMAIN)
    first = cuckoo.distinct_keys(keys)
    return items, ot.take_rows(keys, first), first


def _padded(keys: U8, target: int) -> U8:
    if len(keys) > target:
        raise ValueError(f"bucket holds {len(keys)} items, more than its size {target}")
    return np.concatenate((keys, cuckoo.dummy_keys(target - len(keys))))


# --- per-bucket work (runs in the pool) -----------------------------------------------------


@dataclass(frozen=True)
class Matched:
    """A bucket's matched items, sorted: ``lengths`` and concatenated ``data``."""

    lengths: I64
    data: bytes

    @property
    def count(self) -> int:
        return len(self.lengths)

    @classmethod
    def of(cls, array: Any) -> Matched:
        """The items of a binary or string Arrow array."""
        data, offsets = cuckoo.arrow_buffers(array)
        return cls(np.diff(offsets), data[offsets[0] : offsets[-1]].tobytes())


def _matched_items(items: Any, keys: U8, first: I64, matched: I64) -> Matched:
    """The items of the matched distinct keys, in ``bytes`` order."""
    order, unsorted = keyed.output_order(keys, matched)
    return Matched.of(keyed.take_in_order(items, first[order], unsorted))


@dataclass(frozen=True)
class _RequesterBucket:
    seed: bytes
    u: list[U8]
    own: kkrt.OwnTags
    distinct: int


def _requester_prepare(
    path: Path, target: int, setup: kkrt.ReceiverSetup, offset: int, width: int
) -> _RequesterBucket:
    _, keys, _ = _bucket_keys(path)
    padded = _padded(keys, target)
    placed = cuckoo.build(padded, cuckoo.table_size(target))
    u: list[U8] = []
    own = kkrt.requester_encode(setup, padded, placed, width, u.append, offset)
    return _RequesterBucket(placed.seed, u, own, len(keys))


def _requester_match(
    path: Path, own: kkrt.OwnTags, tags: U8, distinct: int, reveal: bool
) -> tuple[Matched, U8 | None]:
    found, position = kkrt.match_tags(own, tags)
    found[distinct:] = False  # dummies (a dummy match has probability 2^-128)
    positions = None
    if reveal:
        flat = np.unique(position[found]).astype(">u8")  # positions only: no hash function
        positions = flat.view(np.uint8).reshape(-1, 8)
    items, keys, first = _bucket_keys(path)
    return _matched_items(items, keys, first, np.flatnonzero(found)), positions


def _provider_evaluate(
    path: Path,
    target: int,
    setup: kkrt.SenderSetup,
    seed: bytes,
    bins: int,
    width: int,
    offset: int,
    u: list[U8],
) -> tuple[U8, I64, int]:
    _, keys, _ = _bucket_keys(path)
    padded = _padded(keys, target)
    order = random_permutation(target)
    parts = iter(u)

    def receive(lo: int, hi: int) -> U8:
        part = next(parts)
        if part.shape != (ot.CODE_BITS, (hi - lo) // 8):
            raise ChannelError("KKRT column block of the wrong size")
        return part

    tags = kkrt.provider_tags(
        setup, ot.take_rows(padded, order), seed, bins, width, receive, offset
    )
    return tags.reshape(cuckoo.HASHES * target, width), order, len(keys)


def _provider_output(path: Path, order: I64, positions: I64) -> Matched:
    items, keys, first = _bucket_keys(path)
    chosen = order[positions]
    return _matched_items(items, keys, first, np.sort(chosen[chosen < len(keys)]))


# --- executors ------------------------------------------------------------------------------


class _Inline(Executor):
    """Runs each task at submission, in the calling thread (``workers=0``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, like a pool
            future.set_exception(exc)
        return future


def process_pool(workers: int) -> Executor:
    """The local pool: ``workers`` processes, or the calling thread when ``workers <= 0``."""
    if workers <= 0:
        return _Inline()
    # forkserver: workers fork from a clean single-threaded server process (safe in a
    # threaded node, and they start fast once the server runs)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))


def _executor(
    workers: int, executor: Executor | None
) -> contextlib.AbstractContextManager[Executor]:
    """The caller's executor, left running, or a local pool shut down after the run."""
    return contextlib.nullcontext(executor) if executor is not None else process_pool(workers)


# --- output ---------------------------------------------------------------------------------


class ItemsOutput:
    """Writes matched items in order to a JSON Lines file or Parquet and digests them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._lengths = hashlib.sha256()
        self._data = hashlib.sha256()
        self._parquet = path.suffix.lower() in PARQUET_SUFFIXES
        self._schema = pa.schema([("item", pa.large_binary())])
        self._writer: Any = pq.ParquetWriter(str(path), self._schema) if self._parquet else None
        self._handle = None if self._parquet else path.open("wb")

    def write(self, matched: Matched) -> None:
        if matched.count == 0:
            return
        self._lengths.update(matched.lengths.astype(">u8").tobytes())
        self._data.update(matched.data)
        self.count += matched.count
        offsets = np.concatenate(([0], np.cumsum(matched.lengths)))
        array = pa.Array.from_buffers(
            pa.large_binary(),
            matched.count,
            [None, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(matched.data)],
        )
        if self._writer is not None:
            self._writer.write_batch(pa.record_batch([array], schema=self._schema))
            return
        assert self._handle is not None
        self._handle.write(jsonlines.encode(array))

    def close(self) -> str:
        if self._writer is not None:
            self._writer.close()
        if self._handle is not None:
            self._handle.close()
        final = hashlib.sha256(DIGEST_DOMAIN)
        final.update(self._lengths.digest())
        final.update(self._data.digest())
        return final.hexdigest()


# --- the protocol ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    role: Role
    reveal: bool
    buckets: int
    key_id: str
    rows: int
    bucket_size: int

    def encode(self) -> bytes:
        return json.dumps(
            {
                "protocol": PROTOCOL,
                "version": VERSION,
                "role": self.role,
                "reveal_to_provider": self.reveal,
                "buckets": self.buckets,
                "partition_key": self.key_id,
                "rows": self.rows,
                "bucket_size": self.bucket_size,
            },
            sort_keys=True,
        ).encode()

    def peer(self, payload: bytes) -> _Header:
        try:
            fields = json.loads(payload)
        except ValueError:
            raise PsiHandshakeError("peer header is not JSON") from None
        if not isinstance(fields, dict):
            raise PsiHandshakeError("peer header is not a JSON object")
        if (fields.get("protocol"), fields.get("version")) != (PROTOCOL, VERSION):
            raise PsiHandshakeError(
                f"peer speaks {fields.get('protocol')!r} version {fields.get('version')!r}, "
                f"we speak {PROTOCOL!r} {VERSION}"
            )
        role, reveal = fields.get("role"), fields.get("reveal_to_provider")
        if role not in ("requester", "provider") or role == self.role:
            raise PsiHandshakeError(f"peer role {role!r} does not pair with {self.role!r}")
        if reveal is not self.reveal:
            raise PsiHandshakeError(f"mode mismatch: peer reveal_to_provider={reveal!r}")
        if fields.get("buckets") != self.buckets or fields.get("partition_key") != self.key_id:
            raise PsiHandshakeError("peer partitions with another bucket count or key")
        rows, size = fields.get("rows"), fields.get("bucket_size")
        if type(rows) is not int or type(size) is not int or not 0 <= size <= rows < 1 << 48:
            raise PsiHandshakeError(f"peer header has bad sizes {rows!r}, {size!r}")
        return _Header(role, reveal, self.buckets, self.key_id, rows, size)


def _exchange(channel: Channel, ours: _Header, timeout: float | None) -> _Header:
    if channel.side == "a":
        channel.send(ours.encode())
        return ours.peer(channel.recv(timeout))
    payload = channel.recv(timeout)
    channel.send(ours.encode())  # before checking, so that both parties see the refusal
    return ours.peer(payload)


def run_bucketed_psi(
    channel: Channel,
    role: Role,
    source: Path,
    column: str,
    out: Path,
    *,
    buckets: int,
    workers: int = 2,
    reveal_to_provider: bool = False,
    timeout: float | None = None,
    partition_key: bytes | None = None,
    work_dir: Path | None = None,
    chunk_rows: int = 1 << 20,
    executor: Executor | None = None,
) -> BucketedResult:
    """Bucketed KKRT-PSI of ``source``'s ``column`` (CSV or Parquet) with the peer.

    Both parties must use the same ``buckets`` and ``partition_key`` (16 public bytes, e.g.
    derived from the task id; ``None`` on both sides: side ``a`` draws one and sends it first).
    The output is written to ``out`` by a party that learns it (the requester; the provider too
    with ``reveal_to_provider``). ``workers`` processes do the CPU work (0: inline), or the
    caller's ``executor`` (its owner shuts it down), with ``max(1, workers)`` buckets in flight
    per turn; bucket files go to a temporary directory under ``work_dir`` and are removed at
    the end.
    ``timeout`` bounds each wait for a peer message, in seconds.
    """
    check_role(role)
    started = time.perf_counter()
    sent_before = channel.bytes_sent
    if partition_key is None:
        if channel.side == "a":
            partition_key = secrets.token_bytes(KEY_BYTES)
            channel.send(partition_key)
        else:
            partition_key = recv_exact(channel, KEY_BYTES, timeout, "partition key")
    elif len(partition_key) != KEY_BYTES:
        raise ValueError("the partition key must be 16 bytes")
    learns = role == "requester" or reveal_to_provider
    scratch = Path(tempfile.mkdtemp(prefix="pl-psi-buckets-", dir=work_dir))
    try:
        parts = partition(
            source,
            column,
            scratch,
            buckets=buckets,
            partition_key=partition_key,
            chunk_rows=chunk_rows,
        )
        partitioned = time.perf_counter() - started
        key_id = hashlib.sha256(b"pl/partition-key" + partition_key).hexdigest()[:32]
        ours = _Header(role, reveal_to_provider, buckets, key_id, parts.total, max(parts.rows))
        theirs = _exchange(channel, ours, timeout)
        run = _Run(channel, parts, ours, theirs, workers, timeout, executor)
        output = ItemsOutput(out) if learns else None
        try:
            distinct = run.requester(output) if role == "requester" else run.provider(output)
        finally:
            digest = output.close() if output is not None else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = BucketedResult(
        role=role,
        buckets=buckets,
        rows=parts.total,
        distinct=distinct,
        bucket_size=ours.bucket_size,
        peer_rows=theirs.rows,
        peer_bucket_size=theirs.bucket_size,
        learned_output=learns,
        matched=output.count if output is not None else 0,
        output=out if learns else None,
        output_sha256=digest,
        partition_seconds=partitioned,
        seconds=time.perf_counter() - started,
        bytes_sent=channel.bytes_sent - sent_before,
    )
    logger.info(
        "bucketed kkrt-psi %s: %d rows in %d buckets (size %d), peer %d rows (size %d), "
        "output %s (%d items), %.1f s (partition %.1f s)",
        role,
        result.rows,
        buckets,
        result.bucket_size,
        result.peer_rows,
        result.peer_bucket_size,
        learns,
        result.matched,
        result.seconds,
        partitioned,
    )
    return result


class _Run:
    def __init__(
        self,
        channel: Channel,
        parts: Partition,
        ours: _Header,
        theirs: _Header,
        workers: int,
        timeout: float | None,
        executor: Executor | None,
    ) -> None:
        self.channel, self.parts, self.timeout = channel, parts, timeout
        self.workers, self.executor = workers, executor
        self.group = max(1, workers)
        self.reveal = ours.reveal
        requester, provider = (ours, theirs) if ours.role == "requester" else (theirs, ours)
        self.size_r, self.size_p = requester.bucket_size, provider.bucket_size
        self.bins = cuckoo.table_size(self.size_r)
        self.width = kkrt.tag_bytes(ours.buckets * self.size_r, ours.buckets * self.size_p)
        self.active = self.size_r > 0 and self.size_p > 0  # both know; else nothing to run

    def _groups(self) -> list[list[int]]:
        count = len(self.parts.paths)
        return [list(range(lo, min(lo + self.group, count))) for lo in range(0, count, self.group)]

    def requester(self, output: ItemsOutput | None) -> int:
        assert output is not None
        if not self.active:
            return _count_distinct(self.parts)
        channel, timeout = self.channel, self.timeout
        setup = kkrt.setup_requester(channel, timeout)
        paths, size_r, bins, width = self.parts.paths, self.size_r, self.bins, self.width
        distinct = 0
        with _executor(self.workers, self.executor) as pool:
            prepared: dict[int, Future[_RequesterBucket]] = {}
            ahead = iter(range(len(paths)))

            def prefetch() -> None:  # encode up to 2 groups ahead
                while len(prepared) < 2 * self.group:
                    b = next(ahead, None)
                    if b is None:
                        return
                    prepared[b] = pool.submit(
                        _requester_prepare, paths[b], size_r, setup, b * bins, width
                    )

            def finish(limit: int) -> None:  # write matches in bucket order
                while len(pending) > limit:
                    matched, positions = pending.popleft().result()
                    if positions is not None:
                        send_records(channel, positions)
                    output.write(matched)

            pending: deque[Future[tuple[Matched, U8 | None]]] = deque()
            for group in self._groups():
                prefetch()
                if self.reveal:  # the previous group's matched positions open our turn
                    finish(0)
                works = []
                for _ in group:
                    work = prepared.pop(min(prepared)).result()
                    channel.send(work.seed)
                    for u in work.u:
                        send_records(channel, u)
                    works.append(work)
                    distinct += work.distinct
                    prefetch()
                for b, work in zip(group, works, strict=True):
                    tags = recv_records(channel, width, timeout, count=cuckoo.HASHES * self.size_p)
                    lists = tags.reshape(cuckoo.HASHES, self.size_p, width)
                    job = pool.submit(
                        _requester_match, paths[b], work.own, lists, work.distinct, self.reveal
                    )
                    pending.append(job)
                if not self.reveal:
                    finish(self.group)
            finish(0)
        return distinct

    def provider(self, output: ItemsOutput | None) -> int:
        if not self.active:
            return _count_distinct(self.parts)
        channel, timeout = self.channel, self.timeout
        setup = kkrt.setup_provider(channel, timeout)
        paths, size_p, bins, width = self.parts.paths, self.size_p, self.bins, self.width
        distinct = 0
        with _executor(self.workers, self.executor) as pool:
            previous: list[tuple[int, I64]] = []
            for group in self._groups():
                if self.reveal:
                    self._outputs(pool, previous, output)
                evaluations = []
                for b in group:
                    seed = recv_exact(channel, cuckoo.SEED_BYTES, timeout, "cuckoo seed")
                    u = [
                        recv_records(channel, (hi - lo) // 8, timeout, count=ot.CODE_BITS)
                        for lo, hi in kkrt.chunks(bins)
                    ]
                    evaluations.append(
                        pool.submit(
                            _provider_evaluate,
                            paths[b],
                            size_p,
                            setup,
                            seed,
                            bins,
                            width,
                            b * bins,
                            u,
                        )
                    )
                previous = []
                for b, evaluation in zip(group, evaluations, strict=True):
                    tags, order, count = evaluation.result()
                    channel.delivering()  # each bucket's tags give the requester its part
                    send_records(channel, tags)
                    previous.append((b, order))
                    distinct += count
            if self.reveal:
                self._outputs(pool, previous, output)
        return distinct

    def _outputs(
        self, pool: Executor, previous: list[tuple[int, I64]], output: ItemsOutput | None
    ) -> None:
        """Receive the matched positions of the previous group and write the provider's output."""
        assert output is not None
        jobs = []
        for b, order in previous:
            flat = recv_records(self.channel, 8, self.timeout).view(">u8").reshape(-1)
            positions = flat.astype(np.int64)
            if positions.size and (positions.min() < 0 or positions.max() >= 3 * self.size_p):
                raise ChannelError("peer sent a matched position out of range")
            distinct = np.unique(positions % self.size_p)
            jobs.append(pool.submit(_provider_output, self.parts.paths[b], order, distinct))
        for job in jobs:
            output.write(job.result())


def _count_distinct(parts: Partition) -> int:
    return sum(len(_bucket_keys(path)[1]) for path in parts.paths)


# --- a socket channel (benchmarks, tests, two local processes) -------------------------------


class SocketChannel(Channel):
    """A :class:`Channel` over a connected stream socket: each message is an 8-byte big-endian
    length and the payload. No encryption or authentication: for two processes on one host
    (``socket.socketpair``) or a transport that provides them."""

    _LENGTH = struct.Struct(">Q")

    def __init__(self, side: Literal["a", "b"], sock: socket.socket) -> None:
        super().__init__(side)
        self._sock = sock
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()

    def _send_raw(self, payload: bytes) -> None:
        if self._closed:
            raise ChannelClosed("channel is closed")
        try:
            self._sock.sendall(self._LENGTH.pack(len(payload)))
            self._sock.sendall(payload)
        except OSError as exc:
            raise ChannelClosed(f"send failed: {exc}") from None

    def _recv_exact(self, size: int) -> bytes:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            try:
                count = self._sock.recv_into(view[got:])
            except TimeoutError:
                raise ChannelTimeout("no message within the timeout") from None
            except OSError as exc:
                raise ChannelClosed(f"receive failed: {exc}") from None
            if count == 0:
                raise ChannelClosed("channel is closed")
            got += count
        return bytes(buf)

    def _recv_raw(self, timeout: float | None) -> bytes:
        if self._closed:
            raise ChannelClosed("channel is closed")
        self._sock.settimeout(timeout)
        (size,) = self._LENGTH.unpack(self._recv_exact(self._LENGTH.size))
        return self._recv_exact(size)
