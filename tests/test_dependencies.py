"""Every third-party module that src/ and benchmarks/ import is a declared dependency (deptry,
configured in pyproject.toml): a module that only arrives through another package's
requirements (pycryptodome's ``Crypto`` through web3, say) breaks the day that package drops it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from privledger.config import Settings

DEPTRY = str(Path(sys.executable).parent / "deptry")


def deptry(root: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEPTRY, "--no-ansi", *paths],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_third_party_import_is_declared(settings: Settings) -> None:
    result = deptry(settings.project_root, "src", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_undeclared_import_fails_the_check(settings: Settings, tmp_path: Path) -> None:
    shutil.copy(settings.project_root / "pyproject.toml", tmp_path / "pyproject.toml")
    package = tmp_path / "src" / "privledger"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "digest.py").write_text(
        "import numpy\nfrom Crypto.Hash import keccak\n\nprint(numpy, keccak)\n"
    )
    result = deptry(tmp_path, "src")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "'Crypto' imported but it is a transitive dependency" in output
    assert "'numpy' imported" not in output  # a declared dependency passes
