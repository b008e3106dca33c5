"""The README stays a front page (at most 150 lines, the two commands first) and each of its links
leads to a page of the documentation site (mkdocs.yml, built strictly by `make docs`)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
LINK = re.compile(r"\]\(([^)#]+)(#[^)]*)?\)")


def test_the_readme_is_a_front_page() -> None:
    lines = README.splitlines()
    assert len(lines) <= 150, len(lines)
    first_block = README[README.index("```sh") :]
    assert first_block.splitlines()[1].startswith("make test")
    assert "make demo" in first_block.split("```")[1]


def _nav_pages(nav: list[object]) -> set[str]:
    pages: set[str] = set()
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages |= _nav_pages(value)
        else:
            pages.add(str(value))
    return pages


def test_the_readme_links_to_pages_of_the_site() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    in_nav = _nav_pages(config["nav"])
    links = [match.group(1) for match in LINK.finditer(README) if "://" not in match.group(1)]
    assert len(links) >= 20
    for link in links:
        assert (ROOT / link).is_file(), link
        assert link.startswith("docs/") and link.removeprefix("docs/") in in_nav, link
