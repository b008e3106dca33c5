from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from privledger.store.db import make_engine, sqlite_url


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], f"models and migrations differ: write a migration ({diff})"
    assert {"chain_event", "local_task", "api_token", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )


def test_reopening_a_migrated_database_is_a_no_op(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "node.db")
    make_engine(url)
    with make_engine(url).connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0007"
