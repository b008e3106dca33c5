"""The explorer and the cockpit in a real browser (Debian chromium driven by Playwright): an
auditor signs in through the login form, browses blocks to a transaction's decoded call, finds a
task by id, opens its timeline, verifies its result digest and opens the provenance graph; an
operator watches the cockpit's charts and node health refresh; others are refused.

Screenshots of the main pages go to ``$TMPDIR/privledger-screenshots`` (not part of the repo)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, Page, expect

from privledger.evm.accounts import dev_account

from .conftest import Running
from .test_explorer import NODE, NODE_ADMIN, REGULATOR, sign
from .test_explorer_ledger import BANK_ADMIN, world

pytestmark = pytest.mark.browser
__all__ = ["world"]  # the session fixture shared with the HTTP tests

SHOTS = Path(tempfile.gettempdir()) / "privledger-screenshots"
STRANGER = 9  # a dev account in no organisation


def signed_in(browser: Browser, running: Running, account: LocalAccount) -> Page:
    """A page whose session was opened through the login form, signed like a wallet would."""
    page = browser.new_page(
        base_url=running.nodes[NODE].url, viewport={"width": 1360, "height": 900}
    )
    page.goto("/explorer/login")
    challenge = page.input_value("#challenge")
    page.fill("#address", account.address)
    page.fill("#signature", sign(account, challenge))
    page.click("button[type=submit]")
    return page


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_auditor_browses_blocks_to_a_decoded_call(
    browser: Browser, running: Running, world: dict[str, Any]
) -> None:
    page = signed_in(browser, running, dev_account(REGULATOR))
    expect(page).to_have_url(f"{running.nodes[NODE].url}/explorer/tasks")
    page.click("nav.tabs >> text=Overview")
    expect(page.locator("h1")).to_have_text("Ledger overview")
    shot(page, "overview")
    page.click("nav.tabs >> text=Blocks")
    expect(page.locator("h1")).to_have_text("Blocks")
    shot(page, "blocks")
    page.locator("table a[href^='/explorer/blocks/']").first.click()
    expect(page.locator("h1")).to_contain_text("Block ")
    # the block holding the task's submission, and from it the transaction
    submission = page.request.get(f"/explorer/api/tasks/{world['task_id']}").json()
    tx_hash = next(e["tx_hash"] for e in submission["events"] if e["event"] == "TaskSubmitted")
    block = page.request.get(f"/explorer/api/txs/{tx_hash}").json()["block_number"]
    page.goto(f"/explorer/blocks/{block}")
    page.click(f"a[href='/explorer/txs/{tx_hash}']")
    decoded = page.locator("p.decoded")
    expect(decoded).to_contain_text("TaskLedger.submitTask()")
    expect(page.locator("table.events")).to_contain_text("TaskSubmitted")
    expect(page.locator("dl.args").first).to_contain_text("inputs")
    shot(page, "transaction")
    page.close()


def test_auditor_finds_a_task_verifies_its_digest_and_opens_its_provenance(
    browser: Browser, running: Running, world: dict[str, Any], tmp_path: Path
) -> None:
    task_id = world["task_id"]
    page = signed_in(browser, running, dev_account(REGULATOR))
    page.fill("header input[name=q]", str(task_id))
    page.press("header input[name=q]", "Enter")
    page.click(f"a[href='/explorer/tasks/{task_id}']")
    expect(page.locator("h1")).to_contain_text(f"Task #{task_id}")
    expect(page.locator("h1 .badge")).to_have_text("settled")
    expect(page.locator("table.events")).to_contain_text("ResultAnchored")
    shot(page, "task")

    with running.client("telecom", "operator") as client:
        result = client.get(f"/tasks/{task_id}/result").json()
    result_file = tmp_path / "result.json"
    result_file.write_text(json.dumps(result))
    page.click("text=Verify a result >> nth=-1")
    page.fill("input[name=org_id]", str(running.org_ids["telecom"]))
    page.set_input_files("input[name=result_file]", str(result_file))
    page.click("form.stack button[type=submit]")
    expect(page.locator(".alert.ok")).to_contain_text("Verified")
    shot(page, "verified")

    page.goto(f"/explorer/tasks/{task_id}")
    page.click("text=Provenance graph")
    graph = page.locator("svg.graph")
    expect(graph).to_be_visible()
    expect(page.locator(f"svg.graph a[data-key='task:{task_id}']")).to_be_visible()
    assert page.locator("svg.graph .edge").count() >= 4
    shot(page, "provenance")
    page.click(f"svg.graph a[data-key='dataset:{world['theirs']}']")
    expect(page.locator("#grants")).to_contain_text("GrantConsumed")
    shot(page, "dataset")
    page.close()


def test_operator_cockpit_fills_and_refreshes(browser: Browser, running: Running) -> None:
    page = signed_in(browser, running, dev_account(NODE_ADMIN))
    expect(page).to_have_url(f"{running.nodes[NODE].url}/explorer/cockpit")
    expect(page.locator("h1")).to_have_text("Operations cockpit")
    charts = page.locator(".chart-box svg.chart")
    expect(charts).to_have_count(6)
    assert page.locator(".chart-box rect[class^='series-']").count() > 0  # bars were drawn
    # each of the consortium's nodes is up (other tests of the session may have onboarded
    # organisations whose nodes they stopped since: those are listed too, as down)
    rows = page.locator("#health tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= len(running.org_ids)
    for org_id in running.org_ids.values():
        row = rows.filter(has_text=f"(org {org_id})")
        expect(row).to_have_count(1)
        expect(row.locator(".badge.ok")).to_have_count(1)
    # the page polls its JSON twin and redraws
    expect(page.locator("body")).to_have_attribute("data-refreshed", "1", timeout=15_000)
    expect(charts).to_have_count(6)
    shot(page, "cockpit")
    # an operator is no auditor: the explorer refuses
    response = page.goto("/explorer/blocks")
    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text("auditor role")
    page.close()


@pytest.mark.parametrize("index", [STRANGER, BANK_ADMIN])  # no role; another org's operator
def test_an_account_without_a_role_here_cannot_sign_in(
    browser: Browser, running: Running, index: int
) -> None:
    page = signed_in(browser, running, dev_account(index))
    expect(page.locator(".alert.bad")).to_contain_text("no auditor role")
    response = page.goto("/explorer/cockpit")
    assert response is not None and response.url.endswith("/explorer/login")
    page.close()
