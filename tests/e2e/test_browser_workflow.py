"""The workflow console in a real browser: a task wants bank-b's data without a grant; bank-b's
data owner opens the console, sees the request in the inbox and approves it, which signs the
on-chain approval; the task then runs and settles. Screenshots go to
``$TMPDIR/privledger-screenshots`` (not part of the repo)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from .conftest import Running
from .test_walking_path import submit, wait_status

pytestmark = pytest.mark.browser
SHOTS = Path(tempfile.gettempdir()) / "privledger-screenshots"


def test_a_data_owner_approves_a_pending_task_in_the_browser(
    running: Running, browser: Browser
) -> None:
    telecom = running.register("telecom")
    bank = running.register("bank-b")
    task = submit(running, telecom, bank)  # no grant: the input waits for bank-b's owner
    assert task["status"] == "submitted"
    task_id = task["taskId"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{running.nodes['bank-b'].url}/console")
    page.fill("#token", "pl_not-a-token")
    page.click("#token-form button")
    expect(page.locator("#login-error")).to_contain_text("unknown or revoked API token")

    page.fill("#token", running.nodes["bank-b"].tokens["data_owner"])
    page.click("#token-form button")
    row = page.locator(f"#inbox tr[data-kind=task_approval][data-id='{task_id}']")
    expect(row).to_contain_text("pending")
    expect(row).to_contain_text("telecom")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "workflow-inbox.png"), full_page=True)
    row.locator("button[data-decision=approve]").click()
    expect(page.locator("#notice")).to_contain_text(f"task {task_id}: approved", timeout=30_000)
    expect(row).to_have_count(0)  # decided requests leave the inbox
    page.screenshot(path=str(SHOTS / "workflow-approved.png"), full_page=True)
    page.close()

    with running.client("telecom", "operator") as client:
        final = wait_status(client, task_id, {"settled", "failed"})
        outbox = client.get("/workflow/outbox").json()
    assert final["status"] == "settled", final
    asked = [item for item in outbox if item.get("taskId") == task_id]
    assert [item["status"] for item in asked] == ["approved"]
    events = [e["event"] for e in final["timeline"]]
    assert "InputApproved" in events and "TaskAuthorised" in events
