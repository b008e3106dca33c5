"""The aligned rows of a derived dataset: the rows whose key is in the intersection, in the
input's own format, every column kept."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from privledger.node.derived import _aligned_rows


def test_a_csv_keeps_its_header_and_the_rows_whose_key_matched(tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text('phone,spend\n+1,10\n+2,"2,5"\n+3,30\n', encoding="utf-8")
    aligned = _aligned_rows(source, "phone", {"+2", "+3", "+9"})
    rows = list(csv.reader(io.TextIOWrapper(aligned, "utf-8", newline="")))
    assert rows == [["phone", "spend"], ["+2", "2,5"], ["+3", "30"]]


def test_a_parquet_file_is_filtered_as_parquet(tmp_path: Path) -> None:
    source = tmp_path / "customers.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "amount": [1.5, 2.5, 3.5]}), source)
    table = pq.read_table(_aligned_rows(source, "id", {"1", "3"}))
    assert table.to_pydict() == {"id": [1, 3], "amount": [1.5, 3.5]}
