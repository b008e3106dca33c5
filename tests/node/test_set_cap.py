"""The requester's set-size cap by ratio (grant term ``max_requester_ratio``), at the requester's
node and at the provider when the requester's protocol header announces its set.

The attack: the cap was ``max(1, int(ratio * rows))``, so terms allowing 0.1% of a 100-row dataset
(0.1 keys) let the grantee bring one key per task -- each use of the grant answered "is this one
customer yours?"."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from privledger.evm.contracts import FailureReason
from privledger.node.runners import Run
from privledger.node.runners.base import TaskRefused
from privledger.node.spec import parse_spec
from privledger.node.terms import GrantTerms, violation
from privledger.protocols.channel import channel_pair

from .test_spec import keys

REQUESTER, PROVIDER = 1, 2
SPEC = parse_spec({"protocol": "ecdh", "requester": REQUESTER, "inputs": (keys(1), keys(2))})


def _terms(ratio: float) -> GrantTerms:
    return GrantTerms(protocols=("ecdh",), columns={"phone": ("join",)}, max_requester_ratio=ratio)


def test_a_ratio_allowing_less_than_one_key_allows_none() -> None:
    terms = _terms(0.001)
    assert terms.max_set(100) == 0
    problem = violation(SPEC, terms, SPEC.inputs[1], fee=0, sizes=(1, 100))
    assert problem is not None and problem.term == "max_requester_set"
    assert "max_requester_ratio 0.001 of 100 rows" in problem.message
    assert terms.max_set(1_000) == 1  # the provider's rows grew: one key now
    assert violation(SPEC, terms, SPEC.inputs[1], fee=0, sizes=(1, 1_000)) is None


@pytest.mark.parametrize(
    ("ratio", "rows", "cap"),
    [(0.29, 100, 29), (0.07, 100, 7), (0.1, 30, 3), (0.5, 3, 1), (2.5, 3, 7), (0.999, 1, 0)],
)
def test_the_ratio_cap_rounds_down_the_ratio_the_terms_write(
    ratio: float, rows: int, cap: int
) -> None:
    """0.29 × 100 is 28.999999999999996 in binary floating point: the cap is 29."""
    assert _terms(ratio).max_set(rows) == cap
    both = _terms(ratio).model_copy(update={"max_requester_set": 2})
    assert both.max_set(rows) == min(cap, 2)


def test_the_provider_refuses_one_key_at_the_header_when_its_rows_allow_none() -> None:
    provider_end, requester_end = channel_pair()
    node = SimpleNamespace(org_id=PROVIDER, settings=SimpleNamespace(channel_timeout_s=5.0))
    task = SimpleNamespace(task_id=7)
    channels = {REQUESTER: provider_end}
    run = Run(node, task, SPEC, channels, [], terms=_terms(0.001))  # type: ignore[arg-type]
    capped = run.capped_channel(provider_rows=100)
    requester_end.send(json.dumps({"size": 1}).encode())
    with pytest.raises(TaskRefused) as refused:
        capped.recv_buffer(timeout=5)
    assert refused.value.reason == FailureReason.TERMS_VIOLATION
    assert "term 'max_requester_set'" in str(refused.value)
    assert "at most 0" in str(refused.value)
