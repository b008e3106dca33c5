"""Schemathesis drives every route of a real node from its OpenAPI schema: no input, however
malformed, gets a 500, and every error is ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case

from .conftest import Running

# CI runs 25 examples per route; set PRIVLEDGER_FUZZ_EXAMPLES=500 for a deeper local hunt.
EXAMPLES = int(os.environ.get("PRIVLEDGER_FUZZ_EXAMPLES", "25"))
DATA_OWNER_PREFIXES = (
    "/api/v1/datasets",
    "/api/v1/grants",
    "/api/v1/approvals",
    "/api/v1/transactions",
)


def check_operation(operation: APIOperation, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: Case) -> None:
        response = case.call(headers=headers, timeout=60)
        where = f"{case.method} {case.formatted_path}"
        assert response.status_code < 500, f"{where}: {response.text}"
        if response.status_code >= 400:
            body = json.loads(response.text)
            assert set(body["error"]) == {"code", "message"}, body

    check()


def test_no_route_answers_500(running: Running) -> None:
    node = running.nodes["telecom"]
    schema = schemathesis.openapi.from_url(f"{node.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        role = "data_owner" if operation.path.startswith(DATA_OWNER_PREFIXES) else "operator"
        check_operation(operation, {"Authorization": f"Bearer {node.tokens[role]}"})
