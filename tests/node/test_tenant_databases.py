"""Tenants of one host never share a database: a PostgreSQL URL given to the whole process
(``PRIVLEDGER_DATABASE_URL``) would name the same one for all of them, so the host refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from privledger.api.server import serve_tenants
from privledger.config import NodeSettings


def test_tenants_sharing_one_database_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVLEDGER_DATABASE_URL", "postgresql+psycopg://node@127.0.0.1:1/shared")
    tenants = [NodeSettings(org=org, home=tmp_path / org) for org in ("bank-a", "bank-b")]
    with pytest.raises(ValueError, match="each tenant needs a database of its own"):
        serve_tenants(tenants, host="127.0.0.1", port=1)
    assert not list(tmp_path.iterdir())  # refused before anything was opened or written
