"""Components: discovered from entry points, identified by the hash of their code, resolved
only at that name, version and hash."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from privledger.node.components import (
    BUILTIN_IDS,
    COMPONENT_PROTOCOL_ID,
    Component,
    ComponentRef,
    ComponentUnavailable,
    SpecRefused,
    _closure_hash,
    code_hash,
    installed,
    load_component,
    protocol_id,
    resolve,
)
from privledger.node.runners.base import Run, RunOutput
from privledger.node.spec import SpecInput, parse_spec


def test_every_builtin_protocol_has_its_installed_component() -> None:
    components = installed()
    assert set(BUILTIN_IDS) <= set(components)
    for protocol in BUILTIN_IDS:
        component = components[protocol]
        assert component.builtin and protocol in component.protocols
        assert protocol_id(protocol) == BUILTIN_IDS[protocol]
        assert component.security.strip(), f"{component.name} states no security model"


def test_a_protocol_of_no_builtin_runs_under_the_component_id() -> None:
    assert protocol_id("openmined-psi") == COMPONENT_PROTOCOL_ID == 31
    assert COMPONENT_PROTOCOL_ID not in BUILTIN_IDS.values()


def test_components_of_different_code_have_different_hashes() -> None:
    psi, pir, gbdt = (installed()[p].ref.hash for p in ("ecdh", "simplepir", "vertical-gbdt"))
    assert len({psi, pir, gbdt}) == 3


def test_the_first_hashes_asked_at_once_are_computed_once() -> None:
    """A node's first submissions come at once, each asking for its component's hash; the
    parses of its sources must not run side by side (CPython 3.11's ``ast.parse`` from several
    threads failed with a SystemError now and then)."""
    components = list(installed().values())
    expected = [code_hash(component) for component in components]
    _closure_hash.cache_clear()
    with ThreadPoolExecutor(16) as pool:
        for _ in range(3):
            assert list(pool.map(code_hash, components)) == expected
            _closure_hash.cache_clear()


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[Path]:
    """A vendor's package on the path: ``vendorpkg.component`` imports ``vendorpkg.helper``."""
    package = tmp_path / "vendorpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("FACTOR = 2\n")
    (package / "component.py").write_text(
        "from vendorpkg.helper import FACTOR\n"
        "from privledger.node.components import Component\n"
        "class Doubler(Component):\n"
        "    name = 'vendor.doubler'\n"
        "    version = '1.0'\n"
        "    protocols = ('doubler',)\n"
        "    kind = 'psi'\n"
        "    parties = (2, 2)\n"
        "    roles = ('requester', 'provider')\n"
        "    outputs = ('requester',)\n"
        "    output_schema = 'a key'\n"
        "    enforces = ()\n"
        "    security = 'none'\n"
        "    def run(self, task):\n"
        "        return [], FACTOR\n"
        "DOUBLER = Doubler()\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield package
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("vendorpkg")]:
            del sys.modules[name]


def test_the_code_hash_covers_what_the_component_imports(vendor: Path) -> None:
    from vendorpkg.component import DOUBLER  # type: ignore[import-not-found]

    before = code_hash(DOUBLER)
    assert before == code_hash(DOUBLER) and before.startswith("0x")
    (vendor / "helper.py").write_text("FACTOR = 3\n")  # a module it imports changes
    from privledger.node import components

    components._closure_hash.cache_clear()
    assert code_hash(DOUBLER) != before
    (vendor / "helper.py").write_text("FACTOR = 2\n")
    components._closure_hash.cache_clear()
    assert code_hash(DOUBLER) == before


def test_resolve_refuses_another_name_version_or_hash() -> None:
    ecdh = installed()["ecdh"]
    assert resolve(ecdh.ref, "ecdh") is ecdh
    for change in (
        {"name": "vendor.ecdh"},
        {"version": "0.0.1"},
        {"hash": "0x" + "00" * 32},
    ):
        with pytest.raises(ComponentUnavailable):
            resolve(ecdh.ref.model_copy(update=change), "ecdh")
    with pytest.raises(ComponentUnavailable, match="no installed component"):
        resolve(ComponentRef(name="x", version="1", hash="0x" + "11" * 32), "unknown")


def test_a_component_refuses_a_spec_outside_its_parties_or_outputs() -> None:
    keys = [SpecInput(dataset="0x" + f"{i:064x}", org=i, column="k") for i in (1, 2, 3)]
    task = parse_spec({"protocol": "intersection3", "requester": 1, "inputs": keys})

    with pytest.raises(SpecRefused, match="2 to 2 inputs"):
        _Vendor().check(task)  # a two-party component


class _Vendor(Component):
    name = "vendor.psi"
    version = "1"
    protocols: tuple[str, ...] = ("vendor-psi",)
    kind = "psi"
    parties = (2, 2)
    roles = ("requester", "provider")
    outputs = ("requester",)
    output_schema = ""
    enforces = ()
    security = ""

    def run(self, task: Run) -> RunOutput:
        raise AssertionError


def _entry(component: Component, distribution: str) -> Any:
    """An entry point of ``distribution`` that loads ``component``."""
    return SimpleNamespace(
        load=lambda: component, value="vendor:COMPONENT", dist=SimpleNamespace(name=distribution)
    )


def test_a_vendor_wheel_cannot_take_over_a_builtin_protocol() -> None:
    """Another distribution's component that claims ``ecdh``, or to be built in, is left out
    (whatever its entry name sorts before); one that adds a protocol of its own is taken."""
    hijack, fake_builtin, honest = _Vendor(), _Vendor(), _Vendor()
    hijack.protocols = ("ecdh", "vendor-psi")
    fake_builtin.builtin = True
    assert load_component(_entry(hijack, "vendor-psi")) is None
    assert load_component(_entry(fake_builtin, "vendor-psi")) is None
    assert load_component(_entry(honest, "vendor-psi")) is honest
    assert load_component(_entry(hijack, "privledger")) is hijack  # privledger's own may
    assert installed()["ecdh"].name == "privledger.psi.ecdh"
