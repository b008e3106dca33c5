"""The migrations build exactly the models, on SQLite and on PostgreSQL (``store_url``), and the
tables hold what the node writes into them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import Session, SQLModel, select

from privledger.store.db import make_engine
from privledger.store.models import (
    ApiToken,
    ApiUser,
    AuditEntry,
    LocalDataset,
    LocalTask,
    PsiService,
)
from tests.conftest import new_database

NEWEST = "0015"  # the newest migration


def test_migrations_build_exactly_the_models(store_url: str) -> None:
    engine = make_engine(store_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], f"models and migrations differ: write a migration ({diff})"
    assert {"chain_event", "local_task", "api_token", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_reopening_a_migrated_database_is_a_no_op(store_url: str) -> None:
    make_engine(store_url).dispose()
    engine = make_engine(store_url)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == NEWEST
    engine.dispose()


@pytest.mark.postgres
def test_processes_opening_a_new_database_at_once_migrate_it_once(
    request: pytest.FixtureRequest,
) -> None:
    """API workers starting together on one fresh PostgreSQL database each open it; one migrates
    it while the others wait (without the advisory lock they deadlock on the catalog)."""
    url = new_database(request, "opened_at_once")

    def open_store(_: int) -> str | None:
        engine = make_engine(url)
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
        engine.dispose()
        return revision

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(open_store, range(4))) == {NEWEST}


def test_wide_numbers_and_aware_times_round_trip(store_url: str) -> None:
    """Wei amounts up to 2^128 (the API's bound on a unit price), sizes beyond 2^31 and
    timezone-aware times come back as they went in; ids beyond 2^31 can be asked for."""
    engine = make_engine(store_url)
    price, size = 2**128 - 1, 5 * 2**31
    expires = datetime(2040, 1, 1, 12, 30, tzinfo=UTC) + timedelta(microseconds=7)
    with Session(engine) as session:
        dataset = LocalDataset(
            dataset_id="0x01",
            name="customers",
            path="/data/customers.csv",
            columns=["phone"],
            row_count=3,
            schema_hash="0x02",
            commitment="0x03",
            salt="0x04",
            level=2,
            unit_price=price,
        )
        service = PsiService(
            name="match", dataset_id="0x01", column="phone", output="both", price_wei=10**30
        )
        task = LocalTask(task_id=1, spec_hash="0x05", result_size=size, bytes_sent=size + 1)
        user = ApiUser(name="op", address="0x06")
        session.add_all([dataset, service, task, user])
        session.flush()
        assert user.id is not None
        session.add(ApiToken(token_hash="x", user_id=user.id, role="operator", expires_at=expires))
        session.commit()
    with Session(engine) as session:
        assert session.exec(select(LocalDataset)).one().unit_price == price
        assert session.exec(select(PsiService)).one().price_wei == 10**30
        stored = session.exec(select(LocalTask)).one()
        assert (stored.result_size, stored.bytes_sent) == (size, size + 1)
        token = session.exec(select(ApiToken)).one()
        assert token.expires_at == expires and token.expires_at.tzinfo is not None
        assert session.exec(select(ApiToken).where(ApiToken.expires_at > expires)).all() == []
        # ids from requests (up to 2^63) find nothing rather than fail the query
        assert session.get(LocalTask, 2**31) is None
        assert session.exec(select(AuditEntry).where(AuditEntry.id > 2**63 - 1)).all() == []
        assert session.exec(select(LocalTask).where(LocalTask.task_id == 2**62)).all() == []
    engine.dispose()
