"""Keyword PIR tasks: the querier's output is ``[key, value or null]`` per key it asked for."""

from __future__ import annotations

import json
from typing import Literal

from privledger.evm.contracts import FailureReason
from privledger.node.runners.base import Run, RunOutput, TaskRefused
from privledger.node.runners.builtin import BuiltinComponent
from privledger.protocols.pir import keyword
from privledger.protocols.pir.keyword import KeywordTable, run_holder, run_querier

MAX_PIR_VALUE = 1_000


def run(task: Run) -> RunOutput:
    """The holder is paid per key asked (it cannot know which were found)."""
    mode: Literal["pir", "bucket"] = "pir" if task.spec.protocol == "simplepir" else "bucket"
    channel = task.capped_channel(len(task.rows))
    if not task.is_requester:
        table = KeywordTable.build(dict(padded_pairs(task.rows)), mode=mode)
        view = run_holder(channel, table, timeout=task.timeout)
        return None, view.batch
    keys = sorted(set(task.keys))
    result = run_querier(channel, keys, mode=mode, timeout=task.timeout)
    output = [
        json.dumps([key.decode(), None if value is None else _unpad(value).decode()])
        for key, value in zip(keys, result.values, strict=True)
    ]
    return output, len(keys)


def padded_pairs(rows: list[tuple[bytes, ...]]) -> list[tuple[bytes, bytes]]:
    """PIR values of one length: a 2-byte length, the value, zero padding."""
    width = max((len(value) for _, value in rows), default=0)
    if width > MAX_PIR_VALUE:
        raise TaskRefused(
            FailureReason.POLICY_VIOLATION, f"values longer than {MAX_PIR_VALUE} bytes"
        )
    pairs = {}
    for key, value in rows:
        pairs[key] = len(value).to_bytes(2, "big") + value.ljust(width, b"\0")
    return list(pairs.items())


def _unpad(value: bytes) -> bytes:
    return value[2 : 2 + int.from_bytes(value[:2], "big")]


KEYWORD_PIR = BuiltinComponent(
    name="privledger.pir.keyword",
    protocols=("simplepir", "bucket"),
    kind="pir",
    parties=(2, 2),
    roles=("requester", "provider"),
    outputs=("requester",),
    output_schema="[key, value or null] for each key asked",
    enforces=("max_requester_set", "price"),
    security=keyword,
    runner=run,
)
