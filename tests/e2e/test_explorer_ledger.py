"""The chain explorer on a real consortium: blocks and transactions with decoded calls and events,
organisations and accounts, a dataset's grant history and derivations, search, settlements, an
anchored log batch with its Merkle proof, the provenance graph, and the cockpit's node health."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from privledger.evm.accounts import dev_account
from privledger.evm.merkle import MerkleTree

from .conftest import Running
from .test_explorer import REGULATOR, explorer, login
from .test_walking_path import grant, submit, wait_status

BANK_ADMIN = 1  # dev account of bank-a's admin, data owner and operator


@pytest.fixture(scope="session")
def world(running: Running) -> dict[str, Any]:
    """A settled PSI task, a dataset derived from its bank input, and an anchored log batch."""
    mine = running.register("telecom")
    theirs = running.register("bank-a")
    issued = grant(running, "bank-a", theirs, "telecom")
    task = submit(running, mine, theirs)
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task["taskId"], {"settled", "failed"})
    assert final["status"] == "settled", final
    bank = running.ledger(BANK_ADMIN)
    derived = bank.data.register(
        schema_hash=secrets.token_bytes(32),
        commitment=secrets.token_bytes(32),
        row_count=321,
        level=3,
        unit_price=10**9,
        parents=[bytes.fromhex(theirs[2:])],
        upstream_bps=2_000,
    )
    entries = [secrets.token_bytes(32) for _ in range(5)]
    tree = MerkleTree(entries)
    batch_id, _ = bank.anchors.anchor_batch(tree.root, len(entries), b"audit-log".ljust(32, b"\0"))
    return {
        "task_id": task["taskId"],
        "mine": mine,
        "theirs": theirs,
        "grant_id": issued["grantId"],
        "derived": "0x" + derived.hex(),
        "batch_id": batch_id,
        "entry": "0x" + entries[2].hex(),
        "proof": ["0x" + p.hex() for p in tree.proof(2)],
    }


@pytest.fixture
def auditor(running: Running) -> Iterator[httpx.Client]:
    with explorer(running) as client:
        assert login(client, dev_account(REGULATOR)).status_code == 200
        yield client


def test_a_submission_is_a_decoded_call_with_its_events(
    auditor: httpx.Client, world: dict[str, Any]
) -> None:
    story = auditor.get(f"/explorer/api/tasks/{world['task_id']}").json()
    submitted = next(e for e in story["events"] if e["event"] == "TaskSubmitted")
    tx = auditor.get(f"/explorer/api/txs/{submitted['tx_hash']}").json()
    assert (tx["contract"], tx["function"], tx["status"]) == ("TaskLedger", "submitTask", 1)
    assert [d.lower() for d in tx["args"]["inputs"]] == [world["mine"], world["theirs"]]
    assert int(tx["value_wei"]) == story["fee"]
    names = [e["event"] for e in tx["events"]]
    assert "TaskSubmitted" in names and "GrantConsumed" in names
    block = auditor.get(f"/explorer/api/blocks/{tx['block_number']}").json()
    assert submitted["tx_hash"] in block["transactions"]
    page = auditor.get(f"/explorer/txs/{submitted['tx_hash']}")
    assert page.status_code == 200
    assert "TaskLedger</span>.<strong>submitTask</strong>" in page.text
    assert f'href="/explorer/datasets/{world["theirs"]}"' in page.text  # arguments link on
    latest = auditor.get("/explorer/api/txs").json()["transactions"]
    assert latest and latest[0]["block_number"] >= tx["block_number"]
    older = auditor.get("/explorer/api/txs", params={"before": f"{tx['block_number']}.0"})
    assert all(t["block_number"] < tx["block_number"] for t in older.json()["transactions"])


def test_orgs_accounts_and_roles(running: Running, auditor: httpx.Client) -> None:
    orgs = auditor.get("/explorer/orgs")
    for name in ("bank-a", "bank-b", "telecom", "regulator"):
        assert name in orgs.text
    assert running.nodes["bank-a"].url in orgs.text  # node endpoints, from the chain
    regulator = dev_account(REGULATOR).address
    account = auditor.get(f"/explorer/accounts/{regulator}")
    assert account.status_code == 200 and "auditor" in account.text and "regulator" in account.text
    org = auditor.get(f"/explorer/orgs/{running.org_ids['bank-a']}")
    assert org.status_code == 200 and "withdrawable" in org.text


def test_dataset_grant_history_and_derivation(auditor: httpx.Client, world: dict[str, Any]) -> None:
    dataset = auditor.get(f"/explorer/api/datasets/{world['theirs']}").json()
    assert [g["grant_id"] for g in dataset["grants"]] == [world["grant_id"]]
    assert dataset["grants"][0]["used"] == 1 and dataset["grants"][0]["revoked"] is False
    assert world["task_id"] in dataset["tasks"]
    assert dataset["children"] == [world["derived"]] and dataset["rows_used"] > 0
    derived = auditor.get(f"/explorer/api/datasets/{world['derived']}").json()
    assert derived["parents"] == [world["theirs"]] and derived["level"] == 3
    page = auditor.get(f"/explorer/datasets/{world['theirs']}")
    assert "GrantIssued" in page.text and "GrantConsumed" in page.text


def test_search_finds_tasks_transactions_datasets_accounts_and_orgs(
    auditor: httpx.Client, world: dict[str, Any]
) -> None:
    def kinds(query: str) -> set[str]:
        response = auditor.get("/explorer/api/search", params={"q": query})
        assert response.status_code == 200, response.text
        return {m["kind"] for m in response.json()["matches"]}

    assert "task" in kinds(str(world["task_id"]))
    assert kinds(world["theirs"]) == {"dataset"}
    assert kinds(world["grant_id"]) == {"grant"}
    assert kinds(dev_account(REGULATOR).address) == {"account"}
    assert kinds("telecom") == {"org"}
    opened = auditor.get("/explorer/search", params={"q": world["derived"]})
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/explorer/datasets/{world['derived']}"
    assert auditor.get("/explorer/search", params={"q": "0x" + "ab" * 32}).status_code == 404
    assert auditor.get("/explorer/search", params={"q": "0xnothex"}).status_code == 400


def test_settlements_and_balances(auditor: httpx.Client, world: dict[str, Any]) -> None:
    page = auditor.get("/explorer/settlements")
    assert page.status_code == 200
    assert f'href="/explorer/tasks/{world["task_id"]}"' in page.text and "Balances" in page.text


def test_a_log_entry_is_proven_against_its_anchored_batch(
    auditor: httpx.Client, world: dict[str, Any]
) -> None:
    batch = world["batch_id"]
    listing = auditor.get("/explorer/batches")
    assert f'href="/explorer/batches/{batch}"' in listing.text and "audit-log" in listing.text
    form = {"digest": world["entry"], "proof": "\n".join(world["proof"])}
    proven = auditor.post(f"/explorer/batches/{batch}", data=form)
    assert proven.status_code == 200 and "<strong>Proven</strong>" in proven.text
    forged = auditor.post(f"/explorer/batches/{batch}", data={**form, "digest": "0x" + "11" * 32})
    assert forged.status_code == 200 and "NOT proven" in forged.text
    malformed = auditor.post(f"/explorer/batches/{batch}", data={**form, "proof": "0x12"})
    assert malformed.status_code == 400


def test_provenance_graph_links_datasets_tasks_results_and_derivations(
    auditor: httpx.Client, world: dict[str, Any]
) -> None:
    graph = auditor.get("/explorer/api/provenance", params={"task": world["task_id"]}).json()
    keys = {n["key"] for n in graph["nodes"]}
    task_key = f"task:{world['task_id']}"
    assert {task_key, f"dataset:{world['mine']}", f"dataset:{world['theirs']}"} <= keys
    edges = {(e["source"], e["target"], e["kind"]) for e in graph["edges"]}
    assert (f"dataset:{world['theirs']}", task_key, "input") in edges
    assert sum(1 for s, _, kind in edges if s == task_key and kind == "result") == 2
    assert (f"dataset:{world['theirs']}", f"dataset:{world['derived']}", "derived") in edges
    page = auditor.get("/explorer/provenance", params={"dataset": world["derived"]})
    assert page.status_code == 200 and "<svg" in page.text and 'class="edge derived"' in page.text


def test_cockpit_charts_and_node_health(running: Running, auditor: httpx.Client) -> None:
    snapshot = auditor.get("/explorer/api/cockpit").json()
    assert snapshot["tasks_total"] >= 1 and snapshot["outcomes"]["settled"] >= 1
    # organisations onboarded by the portal's tests have no node running: probe the demo's
    health = {h["org_name"]: h for h in snapshot["health"] if h["org_name"] in running.org_ids}
    assert set(health) == set(running.org_ids)
    assert all(h["up"] and h["latency_ms"] is not None for h in health.values()), health
    page = auditor.get("/explorer/cockpit")
    assert page.status_code == 200 and page.text.count("<svg") >= 6
