"""Numbers as the explorer reads them from its URLs and forms: ASCII digits only.

``str.isdigit()`` also takes superscript and circled digits ("²", "①"), which ``int()`` refuses
with a ValueError (a 500 when unchecked), and other scripts' decimal digits ("٣"), which ``int()``
reads as another spelling of an ASCII number. An id in a URL has one spelling.
"""

from __future__ import annotations

MAX_DIGITS = 20  # every id the ledger gives (a uint64 at most) and then some


def ascii_number(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """``text`` as a whole number if it is 1 to ``max_digits`` ASCII digits, else None."""
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None
