"""The SDK is typed for its users: the documentation's programs pass ``mypy --strict`` as a user
runs it (no plugin, the package found by its ``py.typed``), and a mistake in one is caught."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .docs_code import PAGES, python_blocks

SRC = Path(__file__).resolve().parents[2] / "src"


def mypy_strict(files: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file="]
    env = {**os.environ, "MYPYPATH": str(SRC)}
    return subprocess.run(
        [*command, *map(str, files)], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_the_documented_programs_pass_mypy_strict(tmp_path: Path) -> None:
    programs = [
        (f"{Path(page).stem.replace('-', '_')}_{index}.py", code)
        for page in PAGES
        for index, code in enumerate(python_blocks(page))
    ]
    assert len(programs) >= 6
    wrong = "from privledger.sdk import NodeClient\n\nNodeClient('http://n').task(7).fee + 'x'\n"
    for name, code in [*programs, ("wrong.py", wrong)]:
        (tmp_path / name).write_text(code)
    checked = mypy_strict(sorted(tmp_path.glob("*.py")), tmp_path)
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    # the one mistake: TaskOut.fee is an int
    assert [line.split(":")[0] for line in errors] == ["wrong.py"], checked.stdout
    assert 'Unsupported operand types for + ("int" and "str")' in errors[0]
