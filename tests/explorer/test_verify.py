"""What the explorer's verify form reads from an upload: the result file as the node serves it,
a JSON list of its items, or the whole result object; anything else is a 400, never a 500."""

from __future__ import annotations

import json

import pytest

from privledger.explorer.verify import VerifyInputError, parse_items
from privledger.node import results

ITEMS = ["+1\n2", "line\u2028separator", 'a "quoted" item', ""]
SALT = "0x" + "ab" * 32


def test_every_documented_upload_gives_the_items_in_their_order() -> None:
    assert parse_items(results.encode(ITEMS)) == (ITEMS, None)
    assert parse_items(json.dumps(ITEMS).encode()) == (ITEMS, None)
    whole = {"taskId": 7, "items": ITEMS, "salt": SALT, "resultDigest": "0x"}
    assert parse_items(json.dumps(whole).encode()) == (ITEMS, SALT)
    assert parse_items(b"") == ([], None)  # the result file of no items


@pytest.mark.parametrize(
    "content",
    [b"not json {", b'"no line feed"', b'"a"\nb\n', b"\xff\n", b"{not json", b'{"items": [1]}'],
)
def test_what_is_no_result_is_a_400(content: bytes) -> None:
    with pytest.raises(VerifyInputError) as refused:
        parse_items(content)
    assert refused.value.status == 400 and refused.value.code == "invalid_file"
