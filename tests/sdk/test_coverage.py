"""Every route a user calls has its SDK method: the node's OpenAPI document against the paths
the client requests."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

from privledger.sdk import client

ROOT = Path(__file__).resolve().parents[2]
# what a user does not call through the SDK: node-to-node routes, the API's own documents, the
# classification policy (GET /policy, a node's settings) and a large result's file
# (GET .../result/file, JSON Lines)
NOT_FOR_USERS = re.compile(r"^/(peer|openapi|policy)\b|/result/file$")


def _template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_user_route_has_a_method() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "_hooks"))
    try:
        from reference import node_openapi  # the document `make docs` renders
    finally:
        sys.path.remove(str(ROOT / "docs" / "_hooks"))
    document = node_openapi()
    routes = {
        (method.upper(), _template(path.removeprefix("/api/v1")))
        for path, operations in document["paths"].items()
        for method in operations
        if not NOT_FOR_USERS.search(path.removeprefix("/api/v1"))
    }
    source = inspect.getsource(client)
    requested = {
        (method, _template(path))
        for method, path in re.findall(r'"(GET|POST|DELETE)",\s*f?"(/[^"]*)"', source)
    }
    # a path built beforehand: `path = f"..."` then the request
    built = {_template(path) for path in re.findall(r'path = f"(/[^"]*)"', source)}
    covered = requested | {(method, path) for method, path in routes if path in built}
    assert len(routes) >= 50
    assert sorted(routes - covered) == []
