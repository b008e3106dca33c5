"""The package's dependency direction (DESIGN.md): cli/api -> node -> (evm, store, protocols,
metering); `protocols` imports nothing of ours but protocols; `evm` knows nothing of protocols;
nothing imports `cli`. Read from the source's import statements, lazy ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "privledger"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def _imports(path: Path, module: str) -> set[str]:
    """The privledger modules the source file of ``module`` imports, absolute or relative."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "privledger" or name.startswith("privledger.")}


def _layer_imports(layer: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(PACKAGE)): _imports(path, _module(path))
        for path in sorted((PACKAGE / layer).rglob("*.py"))
    }


def _violations(layer: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{source} imports {name}"
        for source, names in _layer_imports(layer).items()
        for name in sorted(names)
        if name.startswith(forbidden) and not name.startswith(allowed)
    ]


ABOVE_NODE = ("privledger.api", "privledger.cli", "privledger.explorer")
NODE_AND_ABOVE = ("privledger.node", *ABOVE_NODE)


@pytest.mark.parametrize(
    ("layer", "forbidden", "allowed"),
    [
        ("protocols", ("privledger.",), ("privledger.protocols",)),
        ("node", ABOVE_NODE, ()),
        ("evm", ("privledger.protocols", *NODE_AND_ABOVE), ()),
        ("store", NODE_AND_ABOVE, ()),
        ("metering", NODE_AND_ABOVE, ()),
        ("api", ("privledger.cli",), ()),
    ],
)
def test_each_layer_imports_only_downwards(
    layer: str, forbidden: tuple[str, ...], allowed: tuple[str, ...]
) -> None:
    assert _violations(layer, forbidden, allowed) == []


def test_the_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from ..api import app\n    import privledger.cli\n")
    names = _imports(source, "privledger.node.probe")
    assert {"privledger.api", "privledger.api.app", "privledger.cli"} <= names
