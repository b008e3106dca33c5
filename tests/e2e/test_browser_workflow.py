"""The workflow console in a real browser: a task wants bank-b's data without a grant that covers
it; bank-b's data owner opens the console, sees the request in the inbox with what the task does
with the dataset and the term of its grant the task breaks, and approves it, which signs the
on-chain approval; the task then runs and settles. A task whose requester serves a forged spec
can only be rejected. Screenshots go to
``$TMPDIR/privledger-screenshots`` (not part of the repo)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from .conftest import Running
from .test_approvals import forge_spec
from .test_walking_path import grant, submit, wait_status

pytestmark = pytest.mark.browser
SHOTS = Path(tempfile.gettempdir()) / "privledger-screenshots"


def test_a_data_owner_approves_a_pending_task_in_the_browser(
    running: Running, browser: Browser
) -> None:
    telecom = running.register("telecom")
    bank = running.register("bank-b")
    # a grant for keyword queries only: a PSI task is not covered and waits for bank-b's owner
    grant(running, "bank-b", bank, "telecom", kinds=["pir"])
    task = submit(running, telecom, bank)
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
    review = page.locator(f"#inbox tr.review[data-review-for='{task_id}']")
    expect(review).to_contain_text("What the task does with your dataset")
    expect(review).to_contain_text("column “phone”")
    expect(review).to_contain_text("matched as a join key only, never released")
    expect(review).to_contain_text("for another kind of task")  # the PIR grant
    expect(review).to_contain_text("The task breaks term 'protocols'")
    broken = review.locator("tr.broken")
    expect(broken).to_have_count(1)
    expect(broken).to_have_attribute("data-term", "protocols")
    expect(broken).to_contain_text("ecdh")
    expect(review.locator("tr[data-term=columns]")).to_contain_text("✓ kept")
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


def test_a_task_whose_spec_is_forged_can_only_be_rejected_in_the_browser(
    running: Running, browser: Browser
) -> None:
    task = submit(running, running.register("telecom"), running.register("bank-b"))
    task_id = task["taskId"]
    forge_spec(running, task_id)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{running.nodes['bank-b'].url}/console")
    page.fill("#token", running.nodes["bank-b"].tokens["data_owner"])
    page.click("#token-form button")
    row = page.locator(f"#inbox tr[data-kind=task_approval][data-id='{task_id}']")
    review = page.locator(f"#inbox tr.review[data-review-for='{task_id}']")
    expect(review.locator(".spec-status")).to_contain_text("not the one on the ledger")
    expect(review).to_contain_text("ecdh")  # what the chain says is still shown
    expect(row.locator("button[data-decision=approve]")).to_have_count(0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "workflow-forged-spec.png"), full_page=True)
    row.locator("button[data-decision=reject]").click()
    expect(page.locator("#notice")).to_contain_text(f"task {task_id}: rejected", timeout=30_000)
    page.close()
