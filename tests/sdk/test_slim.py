"""The privledger-sdk distribution (sdk/pyproject.toml) installs and works without the node stack:
its wheel is built from this source, installed offline into a fresh venv that holds nothing but it
and its declared dependencies (httpx, pydantic and what they need, taken from this venv, nothing
downloaded), and there the SDK talks to a node and reads its answers while web3, solc, numpy,
SQLModel, SQLAlchemy and FastAPI cannot even be found."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
NODE_STACK = ("web3", "solcx", "numpy", "sqlmodel", "sqlalchemy", "fastapi", "pyarrow", "eth_abi")
IN_THE_FRESH_VENV = textwrap.dedent(
    """
    import importlib.util, sys
    import httpx
    from privledger.sdk import NodeClient, NodeUnreachable, NotFound
    from privledger.wire.tasks import TaskOut

    stack = {stack!r}
    assert [name for name in stack if importlib.util.find_spec(name)] == []
    assert importlib.util.find_spec("privledger.node") is None  # the wheel has sdk and wire only
    body = {{"error": {{"code": "not_found", "message": "no task 9"}}}}
    transport = httpx.MockTransport(lambda request: httpx.Response(404, json=body))
    with NodeClient("http://node.test", "t", transport=transport) as node:
        try:
            node.task(9)
        except NotFound as exc:
            assert exc.code == "not_found"
    with NodeClient("http://127.0.0.1:9", "t", timeout_s=2) as node:
        try:
            node.health()
        except NodeUnreachable:
            pass
    print(sorted(name for name in sys.modules if name.startswith("privledger")))
    """
)


def _closure(names: list[str]) -> set[str]:
    """The distributions ``names`` need, as installed here (extras left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _link_installed(names: set[str], into: Path) -> None:
    """Each distribution's top-level modules and metadata, linked into ``into``."""
    into.mkdir()
    for name in names:
        dist = distribution(name)
        tops = {Path(str(file)).parts[0] for file in dist.files or []}
        for top in tops - {"..", "__pycache__"}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (into / top).exists():
                (into / top).symlink_to(source)


def test_the_slim_distribution_installs_offline_and_needs_no_node_stack(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(dist)],
        cwd=ROOT / "sdk",
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("privledger_sdk-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("/METADATA"))).decode()
    shipped = {re.sub(r"^(privledger/[^/]+)/.*", r"\1", n) for n in names if ".dist-info" not in n}
    assert shipped == {
        "privledger/__init__.py",
        "privledger/py.typed",
        "privledger/sdk",
        "privledger/wire",
    }
    assert not [n for n in names if "__pycache__" in n]
    requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_-]+)", metadata, re.M)
    assert sorted(requires) == ["httpx", "pydantic"]

    uv = shutil.which("uv") or str(ROOT / "build" / "uv" / "bin" / "uv")
    venv = tmp_path / "venv"
    offline = {**os.environ, "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(
        [uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=offline
    )
    python = venv / "bin" / "python"
    install = [uv, "pip", "install", "-q", "--offline", "--no-deps", "--python", str(python)]
    subprocess.run([*install, str(wheel)], check=True, env=offline)
    # its dependencies as this venv has them installed: only those, by a .pth of the fresh venv
    deps = tmp_path / "deps"
    _link_installed(_closure(requires), deps)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "sdk-deps.pth").write_text(f"{deps}\n")

    script = IN_THE_FRESH_VENV.format(stack=NODE_STACK)
    ran = subprocess.run(
        [str(python), "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    assert "privledger.sdk" in ran.stdout and "privledger.api" not in ran.stdout
