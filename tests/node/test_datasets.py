from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from privledger.node.datasets import DatasetFileError, describe, read_column, read_key_column
from privledger.protocols.psi.buckets import column_batches


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


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


def test_binary_and_missing_files_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DatasetFileError, match="UTF-8"):
        describe(binary)
    with pytest.raises(DatasetFileError, match="no file"):
        describe(tmp_path / "missing.csv")


def test_paths_the_os_refuses_are_refused_with_the_reason(tmp_path: Path) -> None:
    too_long = tmp_path / ("0" * 300 + "İ" * 50)
    with pytest.raises(DatasetFileError, match="cannot read"):
        describe(too_long)
    with pytest.raises(DatasetFileError):
        describe(Path("a\x00b.csv"))
    directory = tmp_path / "dir.csv"
    directory.mkdir()
    with pytest.raises(DatasetFileError, match="no file"):
        describe(directory)


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
