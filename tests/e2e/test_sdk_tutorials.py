"""The tutorials run: each Python program of docs/tutorials/ (and of the SDK reference's pages,
tests/sdk/docs_code.py) as its organisation runs it, in a process of its own, with the variables
of that organisation's ``export`` line, against the consortium's node processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

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


def test_vertical_federated_learning(running: Running, tmp_path: Path) -> None:
    """The label depends on both parties' columns, so each one's Shapley value is positive."""
    grant, train = python_blocks("tutorials/vertical-fl.md")
    rng = np.random.default_rng(7)
    ids = [f"c{i}" for i in range(240)]
    usage, bank = rng.normal(size=(240, 2)), rng.normal(size=(240, 2))
    label = (usage @ [1.5, -1.0] + bank @ [1.0, 2.0] + rng.normal(scale=0.5, size=240)) > 0
    files = {"telecom": tmp_path / "usage.csv", "bank-a": tmp_path / "bank.csv"}
    with files["telecom"].open("w", newline="") as telecom, files["bank-a"].open("w") as bank_a:
        csv.writer(telecom).writerows(
            [["id", "calls", "data_gb", "label"]]
            + [[key, *row, int(y)] for key, row, y in zip(ids, usage, label, strict=True)]
        )
        csv.writer(bank_a).writerows(
            [["id", "balance", "loans"]] + [[key, *row] for key, row in zip(ids, bank, strict=True)]
        )
    telecom_id, bank_id = running.org_ids["telecom"], running.org_ids["bank-a"]
    features = run_as(
        running, "bank-a", grant, PARTNER_ORG=str(telecom_id), MY_CSV=str(files["bank-a"])
    ).strip()
    printed = run_as(
        running,
        "telecom",
        train,
        MY_CSV=str(files["telecom"]),
        PARTNER_DATASET=features,
        DEALER_ORG=str(running.org_ids["regulator"]),
    )
    assert ": 240 rows aligned" in printed
    for org in (telecom_id, bank_id):
        line = next(line for line in printed.splitlines() if f"organisation {org}:" in line)
        assert float(line.rsplit(" ", 1)[1]) > 0, printed
