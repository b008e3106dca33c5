"""Numbers read from the wire and from local files: ASCII digits only.

``str.isdigit()`` also takes superscript and circled digits ("²", "①"), which ``int()`` refuses
with a ValueError (a 500 when unchecked), and other scripts' decimal digits ("٣"), which ``int()``
reads as another spelling of an ASCII number. A number in a URL, a header or a configuration key
has one spelling. And a number is below 2^63, as every id and block number the index stores:
SQLite cannot bind a larger one (an OverflowError, a 500 when unchecked) and PostgreSQL's BIGINT
cannot hold it.

Here, beside the wire models, because the explorer, the API, the node and the SDK (whose
distribution holds ``sdk`` and ``wire`` only) all read such numbers; standard library only."""

from __future__ import annotations

MAX_NUMBER = 2**63 - 1
MAX_DIGITS = len(str(MAX_NUMBER))


def is_ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits, and nothing else."""
    return text.isascii() and text.isdigit()


def ascii_number(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """``text`` as a whole number if it is 1 to ``max_digits`` ASCII digits below 2^63, else
    None."""
    if is_ascii_digits(text) and len(text) <= max_digits:
        number = int(text)
        return number if number <= MAX_NUMBER else None
    return None
