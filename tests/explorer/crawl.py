"""Follow the links of explorer pages: every URL a page points at (links, form actions, scripts,
style sheets, the cockpit's JSON) must stay under the explorer's mount, and every page and
redirect reached must resolve there."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urldefrag, urlsplit

import httpx

URL_ATTRIBUTES = ("href", "src", "action", "data-api")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value is not None:
                self.found.append((tag, name, value))


def links(html: str) -> list[tuple[str, str, str]]:
    """The URLs ``html`` points at, as (tag, attribute, url)."""
    parser = _Links()
    parser.feed(html)
    return parser.found


def under(base: str, url: str) -> bool:
    return url == base or url.startswith(base + "/") or url.startswith(base + "?")


def crawl(
    get: Callable[[str], httpx.Response],
    base: str,
    start: list[str],
    *,
    max_pages: int,
    skip: re.Pattern[str] | None = None,
) -> int:
    """Open ``start`` (paths under ``base``) and the pages they link to, breadth first, up to
    ``max_pages`` (``get`` follows no redirects); ``skip`` names paths checked but not opened.
    Asserts every answer is a 200 or a 303 into ``base`` and every URL on a page stays under
    ``base``; the number of pages opened."""
    queue = [base + path for path in start]
    seen = set(queue)
    fetched = 0
    while queue and fetched < max_pages:
        url = queue.pop(0)
        response = get(url)
        fetched += 1
        assert response.status_code in (200, 303), (url, response.status_code)
        if response.status_code == 303:
            assert under(base, response.headers["location"]), (url, response.headers["location"])
            continue
        if not response.headers["content-type"].startswith("text/html"):
            continue
        for tag, attribute, link in links(response.text):
            target, _fragment = urldefrag(link)
            if not target:
                continue  # a place on the same page
            assert not urlsplit(target).netloc and under(base, target), (url, tag, attribute, link)
            opened = tag not in ("form", "script", "link") and attribute != "data-api"
            if opened and target not in seen and not (skip and skip.search(target)):
                seen.add(target)
                queue.append(target)
            elif tag in ("script", "link") and target not in seen:  # assets resolve too
                seen.add(target)
                assert get(target).status_code == 200, (url, target)
    return fetched
