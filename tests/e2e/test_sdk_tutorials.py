"""The tutorials run: each Python program of docs/tutorials/ (and of the SDK reference's pages,
tests/sdk/docs_code.py) as its organisation runs it, in a process of its own, with the variables
of that organisation's ``export`` line, against the consortium's node processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..sdk.docs_code import python_blocks
from .conftest import Running


def run_as(running: Running, org: str, program: str, **variables: str) -> str:
    node = running.nodes[org]
    env = {
        **os.environ,
        "PRIVLEDGER_NODE_URL": node.url,
        "PRIVLEDGER_TOKEN": node.tokens["operator"],
        "PRIVLEDGER_OWNER_TOKEN": node.tokens["data_owner"],
        **variables,
    }
    ran = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def test_psi_between_two_organisations(running: Running, tmp_path: Path) -> None:
    grant, query = python_blocks("tutorials/psi.md")
    bank_data = running.register("bank-a")
    telecom = str(running.org_ids["telecom"])
    granted = run_as(running, "bank-a", grant, PARTNER_ORG=telecom, MY_DATASET=bank_data)
    assert f"10 uses of {bank_data}" in granted
    lines = (running.data_dir / "telecom.csv").read_text().splitlines()[:301]
    mine = tmp_path / "mine.csv"
    mine.write_text("\n".join(lines) + "\n")
    phones = {line.split(",")[0] for line in lines[1:]}
    printed = run_as(running, "telecom", query, MY_CSV=str(mine), PARTNER_DATASET=bank_data)
    common = phones & running.people["bank-a"]
    assert "registered 0x" in printed and ": 300 rows" in printed
    assert f"{len(common)} customers in common" in printed
    assert set(printed.splitlines()[-min(5, len(common)) :]) <= common


def test_an_anonymous_query(running: Running) -> None:
    grant, query = python_blocks("tutorials/anonymous-query.md")
    bank_data = running.register("bank-a")
    telecom = str(running.org_ids["telecom"])
    run_as(running, "bank-a", grant, PARTNER_ORG=telecom, MY_DATASET=bank_data)
    segments = dict(
        line.split(",")[:2]
        for line in (running.data_dir / "bank-a.csv").read_text().splitlines()[1:]
    )
    asked = [*sorted(segments)[:2], "+0000000009"]
    printed = run_as(running, "telecom", query, KEYS=",".join(asked), PARTNER_DATASET=bank_data)
    for key in asked[:2]:
        assert f"{key}: {segments[key]}" in printed
    assert "+0000000009: not a customer of bank-a" in printed
    assert "status settled" in printed
