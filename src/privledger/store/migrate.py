"""Schema migrations (alembic): every node database is brought to the newest revision at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


# the key of the PostgreSQL advisory lock held while a database is migrated
MIGRATION_LOCK = int.from_bytes(b"privldgr", "big") >> 1


def upgrade(engine: Engine) -> None:
    """Apply every migration the database has not seen yet. On PostgreSQL, processes that open
    one database at once (API workers, the CLI beside a node) migrate it one after the other:
    the others wait on an advisory lock, then find it migrated."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def new_revision(engine: Engine, message: str) -> None:
    """Write a migration for the difference between the models and the database (developers)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
