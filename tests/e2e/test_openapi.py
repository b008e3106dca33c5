"""The node API's OpenAPI document is one a partner's client generator can use: operation ids
are the routes' names, and every error answer is described as the API sends it
(``{"error": {"code", "message"}}``), 422 included (FastAPI's default is ``{"detail": [...]}``)."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import Running


def test_operation_ids_and_error_schemas(running: Running) -> None:
    url = running.nodes["bank-a"].url
    document: dict[str, Any] = httpx.get(f"{url}/api/v1/openapi.json", timeout=30).json()
    operations = [
        operation
        for path in document["paths"].values()
        for method, operation in path.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    ids = [operation["operationId"] for operation in operations]
    assert len(ids) == len(set(ids)) >= 50
    assert "issue_grant" in ids and "submit_task" in ids
    assert not [i for i in ids if "_api_v1_" in i]  # FastAPI's path-derived defaults
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorResponse"]["properties"]["error"]["$ref"].endswith("/ErrorDetail")
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message"}
    for operation in operations:
        for status in ("400", "404", "422"):
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"]["$ref"].endswith("/ErrorResponse"), operation["operationId"]
    # what the document promises is what the API answers
    invalid = httpx.post(f"{url}/api/v1/grants", json={}, timeout=30)
    assert invalid.status_code in (401, 422)
    assert set(invalid.json()["error"]) == {"code", "message"}
