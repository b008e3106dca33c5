"""The KKRT and RR22 runner on Arrow columns: its output is the result file, in its order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from privledger.node import results
from privledger.node.runners import Run, psi
from privledger.protocols.channel import channel_pair

REQUESTER, PROVIDER = 1, 2


def _requester_run(tmp_path: Path, column: Any, channel: Any, protocol: str) -> Run:
    node = SimpleNamespace(
        org_id=REQUESTER,
        settings=SimpleNamespace(results_dir=tmp_path, channel_timeout_s=30.0),
    )
    spec = SimpleNamespace(
        protocol=protocol, kind="psi", buckets=None, output="requester", requester=REQUESTER
    )
    task = SimpleNamespace(task_id=7)
    return Run(node, task, spec, {PROVIDER: channel}, [], None, 1, column)  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", ["kkrt", "rr22"])
@pytest.mark.parametrize("slice_items", [1 << 20, 3])
def test_column_output_is_the_result_file_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slice_items: int, protocol: str
) -> None:
    """Written from the Arrow column a slice at a time, the file is what :func:`results.keep`
    makes of the items as a list: sorted, each item once."""
    monkeypatch.setattr(psi, "RESULT_SLICE_ITEMS", slice_items)
    mine = ["+1", "+2", "é", "+4", "+5", "+5", "a" * 40, "a" * 41, "", "🙂", 'q"\\\n']
    theirs = ["+5", "é", "+2", "+4", "+9", "a" * 41, "a" * 40, "", "🙂", 'q"\\\n']
    a, b = channel_pair()
    with ThreadPoolExecutor(1) as pool:
        provider = pool.submit(
            psi.KEYED_PSI[protocol].run_psi_column,
            b,
            pa.array(theirs),
            role="provider",
            timeout=30,
        )
        output, units = psi.run(_requester_run(tmp_path, pa.array(mine), a, protocol))
        provider.result()
    expected = sorted(set(mine) & set(theirs))
    assert units == len(expected) == 9
    assert output == tmp_path / "task-7.jsonl"
    assert results.read(output, limit=units) == expected
    assert output.read_bytes() == results.encode(expected)
