"""A node's database belongs to one deployment (privledger.node.binding): a node started against
another deployment, or a chain that lost its deployment, refuses with a message that says so,
and the demo moves a stale database aside instead of failing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import Session

from privledger.config import NodeSettings, Settings
from privledger.demo import archive_stale_database
from privledger.evm.indexer import EventIndexer
from privledger.node.binding import DeploymentMismatch, bind_store, bound_deployment
from privledger.store.db import make_engine, sqlite_url
from privledger.store.models import LocalTask

from .conftest import Consortium


def test_the_first_start_binds_and_later_starts_check(
    consortium: Consortium, store_url: str
) -> None:
    admin = consortium.admin
    engine = make_engine(store_url)
    bind_store(engine, consortium.w3, admin.deployment)
    bound = bound_deployment(engine)
    assert bound is not None and bound.genesis_hash == admin.deployment.genesis_hash
    bind_store(engine, consortium.w3, admin.deployment)  # the same deployment again: fine

    moved = dict(admin.deployment.addresses, TaskLedger=admin.deployment.addresses["OrgRegistry"])
    other = replace(admin.deployment, addresses=moved)
    with pytest.raises(DeploymentMismatch, match=r"belongs to chain .* new home"):
        bind_store(engine, consortium.w3, other)
    engine.dispose()


def test_a_chain_without_the_deployment_is_named_as_such(
    consortium: Consortium, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    restarted = replace(consortium.admin.deployment, genesis_hash="0x" + "ab" * 32)
    with pytest.raises(DeploymentMismatch, match=r"genesis block .* restarted without its state"):
        bind_store(engine, consortium.w3, restarted)
    gone = replace(
        consortium.admin.deployment,
        addresses=dict(consortium.admin.deployment.addresses, TaskLedger="0x" + "12" * 20),
    )
    with pytest.raises(DeploymentMismatch, match="no TaskLedger contract"):
        bind_store(engine, consortium.w3, gone)
    assert bound_deployment(engine) is None  # nothing bound to a deployment that is not there
    engine.dispose()


def test_a_database_that_indexed_another_deployment_is_refused(
    consortium: Consortium, tmp_path: Path
) -> None:
    """A database from before bindings existed: its index cursor names the deployment it holds."""
    admin = consortium.admin
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    earlier = replace(admin.deployment, deploy_block=admin.deployment.deploy_block - 1)
    EventIndexer(consortium.w3, earlier, admin.artifacts, engine).sync()
    with pytest.raises(DeploymentMismatch, match="another deployment's chain index"):
        bind_store(engine, consortium.w3, admin.deployment)
    engine.dispose()


def test_the_demo_moves_a_stale_database_aside(
    consortium: Consortium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVLEDGER_VAR_PATH", str(tmp_path))
    monkeypatch.delenv("PRIVLEDGER_DATABASE_URL", raising=False)
    settings = Settings()
    home = NodeSettings(org="bank-a", home=settings.var_dir / "nodes" / "bank-a").home
    engine = make_engine(sqlite_url(home / "node.db"))
    with Session(engine) as session:
        session.add(LocalTask(task_id=1, spec_hash="0x" + "00" * 32))
        session.commit()
    admin = consortium.admin
    bind_store(engine, consortium.w3, admin.deployment)
    engine.dispose()
    (home / "demo-tokens.json").write_text("{}")
    assert archive_stale_database(settings, "bank-a", admin.deployment) is None  # still its own

    redeployed = replace(admin.deployment, deploy_block=admin.deployment.deploy_block + 1)
    archive = archive_stale_database(settings, "bank-a", redeployed)
    assert archive is not None and archive.is_file() and archive.parent == home / "archive"
    assert not (home / "node.db").exists() and not (home / "demo-tokens.json").exists()
    kept = make_engine(sqlite_url(archive))
    with Session(kept) as session:
        assert session.get(LocalTask, 1) is not None  # nothing lost: the old records are kept
    kept.dispose()
