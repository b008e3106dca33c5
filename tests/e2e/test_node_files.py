"""A node's files are its own: dataset copies, results, the database and keys are readable by the
node's user alone (0600 files, 0700 folders), including what its home held before it started.
Files an operator puts in the import folder keep their own modes: the folder itself is 0700."""

from __future__ import annotations

import stat

from tests.e2e.conftest import Running


def test_a_node_keeps_its_files_to_itself(running: Running) -> None:
    running.register("bank-b")  # a dataset copy lands in the node's data folder
    for org in running.nodes:
        home = running.settings.var_dir / "nodes" / org
        paths = [home, *home.rglob("*")]
        assert any(path.name == "node.db" for path in paths)
        if org == "bank-b":
            assert any(path.parent.name == "data" and path.suffix == ".csv" for path in paths)
        drop_box = running.import_dir(org)  # the operator's files, behind this 0700 folder
        assert drop_box in paths
        for path in paths:
            if path.is_symlink() or path.parent == drop_box:
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path.relative_to(home)} of {org} is {oct(mode)}"
