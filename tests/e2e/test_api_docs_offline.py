"""The node's API docs work on a network without internet access (issue 23, item 8): the docs
pages load Swagger UI and ReDoc from the node itself, and in a real browser whose every request
to another host is refused, Swagger UI still renders the node's operations."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Route, expect

from .conftest import Running

NODE = "bank-a"
ASSET = re.compile(r'(?:src|href)="([^"]+)"')
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/api/v1/docs", "/api/v1/redoc", "/api/interop/v1/docs"])
def test_docs_pages_reference_only_the_nodes_own_assets(running: Running, page: str) -> None:
    base = running.nodes[NODE].url
    html = httpx.get(f"{base}{page}", timeout=30)
    assert html.status_code == 200
    assets = [urljoin(f"{base}{page}", reference) for reference in ASSET.findall(html.text)]
    assert assets, html.text
    assert "cdn" not in html.text.lower() and "fonts.googleapis" not in html.text
    for asset in assets:
        assert urlsplit(asset).netloc == urlsplit(base).netloc, asset
        answer = httpx.get(asset, timeout=30)
        assert answer.status_code == 200, asset
        suffix = asset[asset.rindex(".") :]
        assert CONTENT_TYPES[suffix] in answer.headers["content-type"], asset


@pytest.mark.browser
def test_swagger_ui_renders_with_every_outside_request_refused(
    browser: Browser, running: Running
) -> None:
    base = running.nodes[NODE].url
    outside: list[str] = []

    def local_only(route: Route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(base).netloc:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page = browser.new_page()
    page.route("**/*", local_only)
    page.goto(f"{base}/api/v1/docs")
    expect(page.locator("#operations-datasets-register_dataset")).to_be_visible(timeout=30_000)
    expect(page.locator(".opblock-summary").first).to_be_visible()
    assert page.locator(".opblock").count() >= 50
    assert outside == []
    page.close()
