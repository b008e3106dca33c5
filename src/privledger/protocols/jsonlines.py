"""JSON Lines: the text form of a list of items that any item survives.

Each item is one JSON string, exactly as ``json.dumps(item, ensure_ascii=False)`` writes it
(UTF-8), followed by a line feed. JSON escapes the quote, the backslash and every C0 control
(line feed and carriage return among them) and nothing else, so every text -- line breaks,
Unicode line and record separators, quotes -- is one line; splitting at line feeds alone and
decoding each line as JSON gives the items back exactly. The encoding runs on Arrow buffers, with
no Python object per item: an item that needs an escape costs one vectorised replacement per
character escaped in the whole array.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# what json.dumps writes for each byte it escapes in a string; the other bytes of UTF-8 text
# (multi-byte sequences never hold a byte below 0x80) stay as they are
_ESCAPES = {byte: json.dumps(chr(byte))[1:-1] for byte in (*range(0x20), 0x22, 0x5C)}
_TEXT = pa.large_string()
_QUOTE, _END, _NOTHING = (pa.scalar(text, _TEXT) for text in ('"', '"\n', ""))


def encode(items: Any) -> bytes:
    """The JSON Lines of an Arrow array of text (string or binary, any offset width).

    Raises ``ValueError`` for an item that is null or not UTF-8 text."""
    try:
        strings = items.cast(_TEXT)  # binary items are checked to be UTF-8 here
    except pa.ArrowInvalid as exc:
        raise ValueError(f"an item is not UTF-8 text: {exc}") from exc
    if strings.null_count:
        raise ValueError("an item is null")
    if len(strings) == 0:
        return b""
    text = np.frombuffer(_data(strings), np.uint8)
    escaped = np.unique(text[(text < 0x20) | (text == 0x22) | (text == 0x5C)]).tolist()
    # the backslash first: the other escapes bring backslashes of their own
    for byte in sorted(escaped, key=lambda byte: byte != 0x5C):
        strings = pc.replace_substring(strings, chr(byte), _ESCAPES[byte])
    return bytes(_data(pc.binary_join_element_wise(_QUOTE, strings, _END, _NOTHING)))


def _data(strings: Any) -> Any:
    """The bytes of a ``large_string`` array's items, end to end (a view of its data buffer)."""
    offsets, data = strings.buffers()[1:]
    ends = np.frombuffer(offsets, np.int64, len(strings) + 1, strings.offset * 8)
    start, stop = int(ends[0]), int(ends[-1])
    return memoryview(data)[start:stop] if data is not None else b""
