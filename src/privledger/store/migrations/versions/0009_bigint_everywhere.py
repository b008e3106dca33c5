"""every integer column 64-bit on PostgreSQL, as on SQLite

SQLAlchemy's psycopg dialect casts each bound integer to its column's type, so on a 32-bit
INTEGER column a lookup of an id from a request (a task id of 2^31, an audit cursor) failed the
query instead of finding nothing. Serial columns' sequences become 64-bit with them. SQLite's
INTEGER is 64-bit already: nothing changes there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 05:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _integer_columns(kind: type[sa.types.TypeEngine[int]]) -> list[tuple[str, str]]:
    inspector = sa.inspect(op.get_bind())
    return [
        (table, column["name"])
        for table in inspector.get_table_names()
        if table != "alembic_version"
        for column in inspector.get_columns(table)
        if type(column["type"]) is kind
    ]


def _resize(kind: type[sa.types.TypeEngine[int]], to: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, column in _integer_columns(kind):
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {to}')
        sequence = bind.execute(
            sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": f'"{table}"', "column": column},
        ).scalar()
        if sequence is not None:
            op.execute(f"ALTER SEQUENCE {sequence} AS {to}")


def upgrade() -> None:
    _resize(sa.INTEGER, "BIGINT")


def downgrade() -> None:
    _resize(sa.BIGINT, "INTEGER")
