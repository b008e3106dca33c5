"""An audit log entry edited on the node's disk gets no proof, and never a 500 (issue 14, 13).

The test holds the node homes, so it plays the insider who edits ``node.db``: first an entry's
fields (its stored digest left as anchored), then the fields and the digest together. A proof is
issued only for an entry whose digest recomputes from its fields and whose batch still gives the
root on chain; anything else is a 409 ``log_mismatch``, and the node keeps answering.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import httpx

from privledger.node.logbook import entry_digest

from .conftest import Running
from .test_audit import entries

ORG = "bank-b"
LOCATION = ("digest", "batchId", "batchIndex")  # what the API adds to an entry's hashed fields


def _anchored_batch(owner: httpx.Client, start: int) -> list[dict[str, Any]]:
    """Three entries after ``start`` anchored in one batch (the node anchors every few seconds)."""
    for _ in range(3):
        assert owner.get("/audit", params={"limit": 1}).status_code == 200
    deadline = time.monotonic() + 90
    while True:
        batches: dict[int, list[dict[str, Any]]] = {}
        for entry in entries(owner, after=start):
            if entry["batchId"] is not None:
                batches.setdefault(entry["batchId"], []).append(entry)
        full = [batch for batch in batches.values() if len(batch) >= 3]
        if full:
            return full[0]
        assert time.monotonic() < deadline, "the audit log was never anchored"
        time.sleep(1)


def test_an_edited_entry_gets_no_proof_and_the_others_keep_theirs(running: Running) -> None:
    database = running.settings.var_dir / "nodes" / ORG / "node.db"
    with running.client(ORG, "data_owner") as owner:
        start = max((e["id"] for e in entries(owner)), default=0)
        edited, kept, *_ = _anchored_batch(owner, start)
        assert owner.get(f"/audit/{edited['id']}/proof").status_code == 200

        with sqlite3.connect(database) as db:  # the fields only: the digest no longer follows
            db.execute("UPDATE audit_entry SET actor = ? WHERE id = ?", ("nobody", edited["id"]))
        altered = owner.get(f"/audit/{edited['id']}/proof")
        assert altered.status_code == 409, altered.text
        assert altered.json()["error"]["code"] == "log_mismatch"
        assert "altered" in altered.json()["error"]["message"]
        assert owner.get(f"/audit/{kept['id']}/proof").status_code == 200  # still provable

        # the fields and the digest edited together: the entry alone looks consistent
        forged = {**edited, "actor": "nobody"}
        digest = entry_digest({k: v for k, v in forged.items() if k not in LOCATION})
        with sqlite3.connect(database) as db:
            db.execute("UPDATE audit_entry SET digest = ? WHERE id = ?", (digest, edited["id"]))
        for entry in (edited, kept):  # the batch no longer gives the root on chain: a 4xx
            answer = owner.get(f"/audit/{entry['id']}/proof")
            assert answer.status_code == 409, answer.text
            assert "does not match" in answer.json()["error"]["message"]
        assert owner.get("/audit", params={"limit": 1}).status_code == 200  # still serving
