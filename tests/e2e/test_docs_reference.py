"""The documentation's node API reference (docs/_hooks/reference.py, built into the site by `make
docs`) is the API a running node serves: every route and schema, nothing more."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import httpx

from .conftest import Running

HOOK = Path(__file__).resolve().parents[2] / "docs" / "_hooks" / "reference.py"


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _operations(schema: dict[str, object]) -> set[tuple[str, str]]:
    paths = schema["paths"]
    assert isinstance(paths, dict)
    return {(method, path) for path, item in paths.items() for method in item}


def test_the_api_reference_is_what_a_node_serves(running: Running) -> None:
    node = running.nodes["bank-a"]
    served = httpx.get(f"{node.url}/api/v1/openapi.json", timeout=30).json()
    hook = _hook()
    documented = hook.node_openapi()
    assert _operations(documented) == _operations(served)
    assert documented["components"]["schemas"].keys() == served["components"]["schemas"].keys()
    page = hook.api_reference()
    for method, path in _operations(served):
        assert f"### `{method.upper()} {path}`" in page
