"""The onboarding portal in a real browser (Debian chromium driven by Playwright): an applicant
applies through the form and tracks the application; the consortium admin starts the review and
approves (the node signs with the admin's key), or rejects with a reason the applicant then sees.

Screenshots go to ``$TMPDIR/privledger-screenshots`` (not part of the repo)."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

import pytest
from eth_account import Account
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session

from privledger.api.routes.onboarding import issue_consortium_admin_token
from privledger.config import NodeSettings
from privledger.evm.accounts import dev_account
from privledger.evm.contracts import Role
from privledger.node.keystore import Keystore
from privledger.store.db import make_engine

from .conftest import Running

pytestmark = pytest.mark.browser

PORTAL = "regulator"
SHOTS = Path(tempfile.gettempdir()) / "privledger-screenshots"


@pytest.fixture(scope="module")
def review_token(running: Running) -> str:
    """A consortium-admin token on the portal's node, whose keystore holds the admin's key."""
    settings = NodeSettings(org=PORTAL, home=running.settings.var_dir / "nodes" / PORTAL)
    Keystore(settings.keystore_dir, settings.keystore_password).import_key(dev_account(0).key)
    with Session(make_engine(settings.resolved_database_url)) as session:
        return issue_consortium_admin_token(
            session, user_name="portal-reviewer", address=dev_account(0).address
        )


def page_of(browser: Browser, running: Running) -> Page:
    return browser.new_page(
        base_url=running.nodes[PORTAL].url, viewport={"width": 1360, "height": 900}
    )


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def apply_in_browser(page: Page, name: str, admin: str, root: str = "") -> tuple[str, str]:
    """Apply through the portal at ``root`` (a tenant's: /t/<org>); the id and tracking secret."""
    page.goto(f"{root}/portal")
    expect(page.locator("h1")).to_have_text("Join the consortium")
    page.fill("#orgName", name)
    page.fill("#contactName", "Grace Hopper")
    page.fill("#contactEmail", "grace@clinic.example")
    page.fill("#adminAddress", admin)
    page.fill("#nodeEndpoint", "https://node.clinic.example")
    page.fill("#nodePublicKey", secrets.token_hex(32))
    page.check("input[name=role][value=data_owner]")
    page.click("#apply-form button[type=submit]")
    expect(page.locator("#apply-result")).to_be_visible()
    application_id = page.text_content("#created-id") or ""
    secret = page.text_content("#created-secret") or ""
    assert len(application_id) == 32 and secret
    return application_id, secret


def track_in_browser(page: Page, application_id: str, secret: str) -> None:
    page.goto("/portal")
    page.fill("#track-id", application_id)
    page.fill("#track-secret", secret)
    page.click("#track-form button[type=submit]")
    expect(page.locator("#track-result")).to_be_visible()


def reviewer_page(browser: Browser, running: Running, token: str, status: str) -> Page:
    page = page_of(browser, running)
    page.goto("/portal/review")
    page.fill("#token", token)
    page.select_option("#filter", status)
    page.click("#token-form button[type=submit]")
    return page


def test_an_applicant_applies_and_the_admin_approves_in_the_browser(
    browser: Browser, running: Running, review_token: str
) -> None:
    applicant = page_of(browser, running)
    name, admin = f"clinic-{secrets.token_hex(3)}", Account.create().address
    application_id, secret = apply_in_browser(applicant, name, admin)
    shot(applicant, "portal-applied")
    applicant.click("#track-form button[type=submit]")  # the form was filled in for us
    expect(applicant.locator("#track-status")).to_have_text("submitted")

    reviewer = reviewer_page(browser, running, review_token, "submitted")
    row = reviewer.locator(f"tr[data-id='{application_id}']")
    expect(row).to_contain_text(name)
    shot(reviewer, "portal-review")
    row.locator("text=Start review").click()
    # the list reloads once the review started: no longer among the submitted ones
    expect(reviewer.locator(f"tr[data-id='{application_id}']")).to_have_count(0)
    reviewer.select_option("#filter", "under_review")
    row = reviewer.locator(f"tr[data-id='{application_id}']")
    expect(row.locator("td.status")).to_have_text("under review")
    row.locator("button", has_text="Approve").click()
    expect(reviewer.locator(f"tr[data-id='{application_id}']")).to_have_count(0)
    reviewer.select_option("#filter", "approved")
    expect(reviewer.locator(f"tr[data-id='{application_id}']")).to_contain_text("org ")

    track_in_browser(applicant, application_id, secret)
    expect(applicant.locator("#track-status")).to_have_text("approved")
    expect(applicant.locator("#track-steps li.done")).to_have_count(3)
    org_id = int(applicant.text_content("#track-org-id") or "0")
    assert applicant.locator("#track-txs code").count() == 2
    shot(applicant, "portal-approved")
    ledger = running.ledger(0)
    assert ledger.orgs.get_org(org_id).name == name
    assert ledger.orgs.roles_of(admin) == Role.ORG_ADMIN | Role.DATA_OWNER


def test_a_rejection_reaches_the_applicant(
    browser: Browser, running: Running, review_token: str
) -> None:
    applicant = page_of(browser, running)
    application_id, secret = apply_in_browser(
        applicant, f"clinic-{secrets.token_hex(3)}", Account.create().address
    )
    reviewer = reviewer_page(browser, running, review_token, "submitted")
    row = reviewer.locator(f"tr[data-id='{application_id}']")
    row.locator("input").fill("<b>missing</b> licence")
    row.locator("button", has_text="Reject").click()
    expect(reviewer.locator(f"tr[data-id='{application_id}']")).to_have_count(0)
    track_in_browser(applicant, application_id, secret)
    expect(applicant.locator("#track-status")).to_have_text("rejected")
    expect(applicant.locator("#track-reason")).to_have_text("<b>missing</b> licence")  # as text


def test_a_wrong_secret_and_a_bad_token_show_errors(browser: Browser, running: Running) -> None:
    page = page_of(browser, running)
    page.goto("/portal")
    page.fill("#track-id", "0" * 32)
    page.fill("#track-secret", "guess")
    page.click("#track-form button[type=submit]")
    expect(page.locator("#track-error")).to_contain_text("no application")
    reviewer = reviewer_page(browser, running, "pl_not-a-token", "submitted")
    expect(reviewer.locator("#review-error")).to_contain_text("unknown or revoked")
