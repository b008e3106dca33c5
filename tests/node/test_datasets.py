from __future__ import annotations

import hashlib
import io
import os
import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from privledger.evm.hashing import keccak256
from privledger.node.datasets import (
    DatasetDescription,
    DatasetFileError,
    DatasetTooLarge,
    NotImportable,
    ingest,
    open_import,
    read_column,
    read_key_column,
)
from privledger.protocols.psi.buckets import column_batches


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def describe(path: Path, max_bytes: int | None = None) -> DatasetDescription:
    """Take the file in as the node does: streamed into a new copy beside it."""
    target = path.with_name(f"copy-{secrets.token_hex(4)}{path.suffix}")
    with path.open("rb") as source:
        return ingest(source, target, max_bytes=max_bytes)


class Trickle(io.RawIOBase):
    """A source that hands out a few bytes per read and fails if read past ``allowed``: a
    client sending its upload slowly, and a check that nothing reads the whole at once."""

    def __init__(self, data: bytes, allowed: int) -> None:
        self.data, self.offset, self.allowed = data, 0, allowed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        assert self.offset <= self.allowed, "read past what the check should have needed"
        size = min(len(buffer), 7, len(self.data) - self.offset)
        buffer[:size] = self.data[self.offset : self.offset + size]
        self.offset += size
        return size


def test_csv_is_described_and_committed_with_a_fresh_salt(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", "phone,segment\n+1,retail\n+2,sme\n")
    first, second = describe(path), describe(path)
    assert first.columns == ["phone", "segment"] and first.row_count == 2
    assert first.schema_hash == second.schema_hash  # same columns, same schema hash
    assert first.commitment != second.commitment  # salted
    assert read_column(path, "phone") == [b"+1", b"+2"]


def test_parquet_is_described_with_types_and_read_by_column(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"phone": ["+1", None, "+3"], "amount": [1, 2, 3]}), path)
    description = describe(path)
    assert description.columns == ["phone", "amount"] and description.row_count == 3
    csv_like = describe(write_csv(tmp_path / "b.csv", "phone,amount\n+1,1\n"))
    assert description.schema_hash != csv_like.schema_hash  # format and types are part of it
    assert read_column(path, "phone") == [b"+1", b"+3"]
    with pytest.raises(DatasetFileError, match="no column"):
        read_column(path, "nope")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "no header"),
        ("dup.csv", "a,a\n1,2\n", "unique"),
        ("ragged.csv", "a,b\n1\n", "line 2 has 1 fields"),
        ("blank.csv", "a,\n1,2\n", "every column needs a name"),
        ("fake.parquet", "not parquet", "not a readable Parquet"),
    ],
)
def test_malformed_files_are_refused_with_the_reason(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    with pytest.raises(DatasetFileError, match=message):
        describe(write_csv(tmp_path / name, content))


def test_binary_files_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DatasetFileError, match="UTF-8"):
        describe(binary)


def test_the_copy_is_what_is_committed_and_a_refused_file_leaves_none(tmp_path: Path) -> None:
    content = "phone,segment\n" + "".join(f"+{i},x\n" for i in range(5_000))
    target = tmp_path / "stored.csv"
    description = ingest(Trickle(content.encode(), len(content)), target)
    assert target.read_bytes() == content.encode() and description.row_count == 5_000
    file_hash = hashlib.sha256(content.encode()).digest()
    assert description.commitment == keccak256(description.salt + file_hash)
    # a ragged line stops the copy there: the rest is not read, and no partial copy is kept
    ragged = "a,b\n1,2\n3\n" + "4,5\n" * 100_000
    with pytest.raises(DatasetFileError, match="line 3"):
        ingest(Trickle(ragged.encode(), 1 << 21), tmp_path / "ragged.csv")
    with pytest.raises(DatasetFileError, match="no rows"):
        ingest(io.BytesIO(b"a,b\n"), tmp_path / "empty.csv")
    assert sorted(os.listdir(tmp_path)) == ["stored.csv"]


def test_a_file_over_the_cap_is_refused_as_soon_as_it_passes_it(tmp_path: Path) -> None:
    content = b"phone\n" + b"+12345\n" * 10_000
    with pytest.raises(DatasetTooLarge, match="at most 1000 bytes"):
        ingest(Trickle(content, 1000 + (1 << 20)), tmp_path / "big.csv", max_bytes=1000)
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.table({"phone": ["+1"] * 1000}), parquet)
    with pytest.raises(DatasetTooLarge), parquet.open("rb") as source:
        ingest(source, tmp_path / "copy.parquet", max_bytes=100)
    assert sorted(os.listdir(tmp_path)) == ["p.parquet"]
    assert describe(parquet, max_bytes=parquet.stat().st_size).row_count == 1000


def test_only_regular_files_inside_the_import_directory_open(tmp_path: Path) -> None:
    imports = tmp_path / "import"
    (imports / "sub").mkdir(parents=True)
    write_csv(imports / "sub" / "a.csv", "phone\n+1\n")
    secret = write_csv(tmp_path / "secret.csv", "phone\n+9\n")
    with (
        open_import(imports, "sub/a.csv") as inside,
        open_import(imports, str(imports / "sub/a.csv")) as absolute,
    ):
        assert inside.read() == absolute.read() == b"phone\n+1\n"
    os.symlink(secret, imports / "link.csv")
    os.symlink(tmp_path, imports / "up")
    os.symlink(imports / "sub" / "a.csv", imports / "inner.csv")
    os.mkfifo(imports / "fifo.csv")
    refused = [
        "link.csv",  # a symlink out
        "up/secret.csv",  # through a symlinked folder
        "inner.csv",  # a symlink even to a file inside
        "fifo.csv",  # would block a reader forever
        "sub",  # a folder
        "",
        ".",
        "../secret.csv",
        "sub/../../secret.csv",
        str(secret),
        str(imports / ".." / "secret.csv"),
        str(tmp_path / "missing.csv"),
        "missing.csv",
        "a\x00b.csv",
        "0" * 300 + "İ" * 50,
    ]
    messages = set()
    for requested in refused:
        with pytest.raises(NotImportable) as caught:
            open_import(imports, requested)
        messages.add(str(caught.value))
    assert len(messages) == 1  # the same whatever lies outside
    with pytest.raises(NotImportable):
        open_import(tmp_path / "no-import-dir", "a.csv")


def test_an_import_directory_behind_a_symlink_is_followed_itself(tmp_path: Path) -> None:
    """An operator may point ``home/import`` at the disk the data lives on."""
    (tmp_path / "disk").mkdir()
    write_csv(tmp_path / "disk" / "a.csv", "phone\n+1\n")
    os.symlink(tmp_path / "disk", tmp_path / "import")
    for requested in (
        "a.csv",
        str(tmp_path / "import" / "a.csv"),
        str(tmp_path / "disk" / "a.csv"),
    ):
        with open_import(tmp_path / "import", requested) as source:
            assert source.read() == b"phone\n+1\n"


@pytest.mark.parametrize(
    "text",
    [
        "phone,segment\n+1,retail\n+2,sme\n",
        ' phone , segment\n"+1, ext",a\n"line\nbreak",b\n,c\né中🙂,d\n"+1, ext",e\n',  # quoted
        "phone\r\n+1\r\n\r\n+2\r\n",  # CRLF and a blank line
        "segment,phone\nx,0042\ny,42\n",  # kept as written, not as numbers
    ],
)
def test_key_column_reads_csv_as_the_row_reader_does(tmp_path: Path, text: str) -> None:
    path = write_csv(tmp_path / "k.csv", text)
    column = read_key_column(path, "phone")
    assert column.type == pa.large_binary()
    assert column.to_pylist() == read_column(path, "phone")


def test_key_column_reads_parquet_as_the_row_reader_does(tmp_path: Path) -> None:
    path = tmp_path / "k.parquet"
    table = pa.table({"phone": ["+1", None, "é"], "amount": [7, 8, 9], "x": [0.5, None, 1e20]})
    pq.write_table(table, path)
    for name in ("phone", "amount", "x"):
        assert read_key_column(path, name).to_pylist() == read_column(path, name)
    with pytest.raises(DatasetFileError, match="cannot read column"):
        read_key_column(path, "nope")
    with pytest.raises(DatasetFileError, match="cannot read column"):
        read_key_column(write_csv(tmp_path / "bad.csv", "phone\n+1,extra\n"), "phone")


def test_a_csv_saved_with_a_byte_order_mark_reads_as_without(tmp_path: Path) -> None:
    """Excel writes UTF-8 CSV with a BOM: the first column is still called ``item`` everywhere a
    column is read (description, row reader, Arrow key column, the bucketed PSI's partitioner)."""
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_text("item,amount\n+441,3\n+442,4\n", encoding="utf-8")
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert describe(marked).columns == describe(plain).columns == ["item", "amount"]
    assert describe(marked).schema_hash == describe(plain).schema_hash
    assert read_column(marked, "item") == read_column(plain, "item") == [b"+441", b"+442"]
    assert read_key_column(marked, "item").to_pylist() == [b"+441", b"+442"]
    batches = column_batches(marked, "item", chunk_rows=8)
    assert [value for batch in batches for value in batch.to_pylist()] == [b"+441", b"+442"]
