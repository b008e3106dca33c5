"""The result format (node/results.py): any text round-trips through it exactly, and through every
two-party PSI -- ECDH, KKRT on rows and on an Arrow column, bucketed KKRT -- from a CSV field to
the items ``GET /tasks/{id}/result`` serves and the bytes the anchored digest commits to."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privledger.node import results
from privledger.node.datasets import read_column, read_key_column
from privledger.node.runners import Run, RunOutput, psi
from privledger.protocols.channel import Channel, channel_pair
from privledger.protocols.psi import buckets
from privledger.protocols.psi.common import Role

# what line-based readers split or JSON escapes, beside any other character (no surrogates:
# no UTF-8 file holds one)
ODD = '\n\r\u2028\u2029\x1c\x1d\x1e\x85\x0b\x0c\t\x00"\\, é🙂'
TEXT = st.text(st.one_of(st.sampled_from(ODD), st.characters(codec="utf-8")), max_size=6)
PSI_EXAMPLES = settings(max_examples=15, deadline=None)
REQUESTER, PROVIDER = 1, 2
TASK_ID = 7
TIMEOUT = 5.0  # seconds a party waits for the other: in memory, an example takes less


@given(st.lists(TEXT))
def test_any_items_round_trip_through_the_result_format(items: list[str]) -> None:
    content = results.encode(items)
    assert (
        content == "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode()
    )
    assert content.count(b"\n") == len(items)  # a line feed ends each item and nothing else
    assert results.parse(content) == items


@given(st.binary(max_size=40))
def test_any_bytes_are_items_or_a_format_error(content: bytes) -> None:
    try:
        items = results.parse(content)
    except results.ResultFormatError:
        return
    assert all(isinstance(item, str) for item in items)


def test_what_is_no_result_file_is_a_format_error() -> None:
    for content in (b'"a"', b"a\n", b"[]\n", b'"a" "b"\n', b'"\\ud800"\n', b'"\xff"\n'):
        with pytest.raises(results.ResultFormatError):
            results.parse(content)
    with pytest.raises(results.ResultFormatError):
        results.encode(["\ud800"])


def test_a_reader_takes_at_most_its_limit(tmp_path: Path) -> None:
    path, _ = results.keep(["b", "a", "c"], tmp_path, TASK_ID)
    assert path == results.path_of(tmp_path, TASK_ID)
    assert results.read(path, limit=3) == ["a", "b", "c"]  # a list is kept sorted
    with pytest.raises(results.TooManyItems):
        results.read(path, limit=2)


def _outcome(read: Callable[[], list[str]]) -> object:
    """What a reader gives: its items, or its error's type and message."""
    try:
        return read()
    except (results.ResultFormatError, results.TooManyItems) as exc:
        return type(exc), str(exc)


LINES = st.lists(
    st.one_of(TEXT.map(lambda item: json.dumps(item, ensure_ascii=False) + "\n"), st.text()),
    max_size=8,
).map(lambda lines: "".join(lines).encode("utf-8", "surrogatepass"))


@given(
    st.one_of(st.binary(max_size=60), LINES),
    st.integers(1, 12),
    st.one_of(st.none(), st.integers(0, 9)),
)
def test_a_block_reader_reads_as_a_reader_by_line(
    content: bytes, block_bytes: int, limit: int | None
) -> None:
    """Blocks of any size, plain or not, give what the JSON decoding of each line gives: the same
    items, or the same error at the same line; past ``limit`` items, too many."""

    def by_line() -> list[str]:  # the reader before blocks: each line decoded as it comes
        items: list[str] = []
        for number, line in enumerate(io.BytesIO(content), 1):
            if limit is not None and number > limit:
                raise results.TooManyItems(f"more than {limit} items")
            items += results._items_by_line([line], number - 1)
        return items

    got = _outcome(lambda: results._items(io.BytesIO(content), limit, block_bytes))
    assert got == _outcome(by_line)


def test_a_large_plain_result_is_read_in_blocks(tmp_path: Path) -> None:
    items = [f"+86{k:010d}" for k in range(50_000)] + ["é🙂 \u2028", ""]
    path, _ = results.keep(items, tmp_path, TASK_ID)
    assert path is not None
    assert results.read(path, limit=len(items)) == sorted(items)
    with pytest.raises(results.TooManyItems):
        results.read(path, limit=len(items) - 1)


def test_no_output_has_no_file_and_the_empty_digest(tmp_path: Path) -> None:
    assert results.keep(None, tmp_path, TASK_ID) == (None, hashlib.sha256(b"").digest())
    assert not list(tmp_path.iterdir())


# --- through PSI ------------------------------------------------------------------------------
def _csv(path: Path, items: list[str]) -> Path:
    """A dataset file as a data owner's tools write one: one column, any text in each field."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item"])
        writer.writerows([item] for item in items)
    return path


Party = Callable[[Path, int, Path, Channel], RunOutput]
"""One party of a PSI: its work directory, org, input file and channel -> its output."""


def _runner(protocol: str, form: str) -> Party:
    """One party of a PSI task through the node's runner, its input read as the worker reads it
    (rows by the csv module, a column by Arrow)."""

    def run(work: Path, org: int, source: Path, channel: Channel) -> RunOutput:
        node = SimpleNamespace(
            org_id=org, settings=SimpleNamespace(results_dir=work, channel_timeout_s=TIMEOUT)
        )
        spec = SimpleNamespace(
            protocol=protocol, kind="psi", buckets=None, output="requester", requester=REQUESTER
        )
        task = SimpleNamespace(task_id=TASK_ID)
        peer = PROVIDER if org == REQUESTER else REQUESTER
        rows = [(item,) for item in read_column(source, "item")] if form == "rows" else []
        column = read_key_column(source, "item") if form == "column" else None
        party = Run(node, task, spec, {peer: channel}, rows, column=column)  # type: ignore[arg-type]
        return psi.run(party)

    return run


def _bucketed(work: Path, org: int, source: Path, channel: Channel) -> RunOutput:
    """One party of a bucketed KKRT-PSI streaming its output to the result file, as the runner
    has it do."""
    out = results.path_of(work, TASK_ID)
    role: Role = "requester" if org == REQUESTER else "provider"
    result = buckets.run_bucketed_psi(
        channel, role, source, "item", out, buckets=3, workers=0, timeout=TIMEOUT, work_dir=work
    )
    return (out if result.learned_output else None), result.matched


def _check_psi(
    run: Callable[[Path, int, Path, Channel], RunOutput], x: list[str], y: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        mine, theirs = _csv(work / "mine.csv", x), _csv(work / "theirs.csv", y)
        (work / "r").mkdir()
        (work / "p").mkdir()
        a, b = channel_pair()
        with ThreadPoolExecutor(1) as pool:
            provider = pool.submit(run, work / "p", PROVIDER, theirs, b)
            output, units = run(work / "r", REQUESTER, mine, a)
            assert provider.result()[0] is None  # the provider learns no output
        expected = set(x) & set(y)
        assert units == len(expected)
        path, sha256 = results.keep(output, work / "r", TASK_ID)
        assert path is not None
        items = results.read(path, limit=len(expected))  # what GET /tasks/{id}/result serves
        assert sorted(items) == sorted(expected) and len(items) == len(expected)
        if run is not _bucketed:  # sorted: a list by keep, a column's output as it is written
            assert items == sorted(expected)
        content = path.read_bytes()  # what GET /tasks/{id}/result/file serves
        assert hashlib.sha256(content).digest() == sha256
        assert results.parse(content) == items and results.encode(items) == content


# the shared items are not empty: a release threshold of one refuses an empty intersection
SETS = st.tuples(
    st.lists(TEXT, min_size=1, max_size=6), st.lists(TEXT, max_size=4), st.lists(TEXT, max_size=4)
)
PSI_RUNS: dict[str, Party] = {
    "ecdh": _runner("ecdh", "rows"),
    "kkrt-rows": _runner("kkrt", "rows"),
    "kkrt-column": _runner("kkrt", "column"),
    "bucketed": _bucketed,
}


@pytest.mark.parametrize("name", PSI_RUNS)
@PSI_EXAMPLES
@given(sets=SETS)
def test_any_text_round_trips_through_psi_exactly(
    name: str, sets: tuple[list[str], list[str], list[str]]
) -> None:
    shared, only_x, only_y = sets
    _check_psi(PSI_RUNS[name], [*only_x, *shared], [*shared, *only_y])
