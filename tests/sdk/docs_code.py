"""The Python blocks of the pages that show the SDK: each is a complete program."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = (
    "reference/sdk.md",
    "services.md",
    "tutorials/psi.md",
    "tutorials/anonymous-query.md",
    "tutorials/vertical-fl.md",
)
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text())
