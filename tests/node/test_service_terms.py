"""The grant term ``service``: a published service's grant serves calls that name the service.

The attack: a task that used a service's grant but left ``service`` out of its spec ran under
the service's terms and was never logged as a call (``tests/security/test_service_calls.py``)."""

from __future__ import annotations

import pytest

from privledger.node.spec import parse_spec
from privledger.node.terms import GrantTerms, violation

from .test_spec import keys

SERVICE = GrantTerms(protocols=("ecdh", "kkrt"), columns={"phone": ("join",)}, service="match")


@pytest.mark.parametrize(
    ("fields", "named"),
    [({}, False), ({"service": "other"}, False), ({"service": "match"}, True)],
)
def test_a_service_s_grant_serves_only_calls_naming_it(fields: dict[str, str], named: bool) -> None:
    spec = parse_spec({"protocol": "ecdh", "requester": 1, "inputs": (keys(1), keys(2)), **fields})
    problem = violation(spec, SERVICE, spec.inputs[1], fee=0)
    assert (problem is None) is named, problem
    if problem is not None:
        assert problem.term == "service" and "'match'" in problem.message


def test_a_plain_grant_serves_a_named_call_and_an_unnamed_task() -> None:
    plain = SERVICE.model_copy(update={"service": None})
    for fields in ({}, {"service": "match"}):
        spec = parse_spec(
            {"protocol": "kkrt", "requester": 1, "inputs": (keys(1), keys(2)), **fields}
        )
        assert violation(spec, plain, spec.inputs[1], fee=0) is None
