"""A node's database belongs to one deployment: one chain (its genesis block) and one set of
contracts. Its tasks, results, grants seen and chain index mean nothing on another, and mixed
with another's they collide (task ids restart at 1). So the first start binds the database to
the deployment it runs on, and every later start checks that binding: a node pointed at another
deployment, or at a chain that lost the deployment (restarted without its state), refuses to
start with a message that says what it found and what to do, instead of failing requests later.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import Engine
from sqlmodel import Session, select
from web3 import Web3

from privledger.evm.deploy import Deployment, chain_problem
from privledger.evm.indexer import cursor_name
from privledger.store.models import DeploymentBinding, IndexerCursor

logger = logging.getLogger(__name__)


class DeploymentMismatch(RuntimeError):
    """The database belongs to another deployment, or the chain no longer holds this one."""


def describe(chain_id: int, genesis_hash: str, deploy_block: int) -> str:
    return f"chain {chain_id} (genesis {genesis_hash[:10]}…), contracts from block {deploy_block}"


def bound_deployment(engine: Engine) -> DeploymentBinding | None:
    with Session(engine) as session:
        return session.get(DeploymentBinding, 1)


def is_bound_elsewhere(engine: Engine, deployment: Deployment) -> bool:
    """Whether the database holds another deployment's records (bound to it, or indexed it)."""
    bound = bound_deployment(engine)
    if bound is not None:
        return not _same(bound, deployment)
    with Session(engine) as session:
        cursors = set(session.exec(select(IndexerCursor.name)))
    return bool(cursors) and cursor_name(deployment) not in cursors


def bind_store(engine: Engine, w3: Web3, deployment: Deployment) -> None:
    """Check that the chain holds ``deployment`` and that the database belongs to it, binding a
    database that belongs to none yet; DeploymentMismatch says why not."""
    problem = chain_problem(w3, deployment)
    if problem is not None:
        raise DeploymentMismatch(
            f"the chain no longer holds the deployment this node was configured for: {problem}. "
            "Deploy the ledger again (privledger deploy) and give the node a new home, or "
            "point it at the chain that holds the deployment"
        )
    here = describe(deployment.chain_id, deployment.genesis_hash, deployment.deploy_block)
    if is_bound_elsewhere(engine, deployment):
        bound = bound_deployment(engine)
        there = (
            "another deployment's chain index"
            if bound is None
            else describe(bound.chain_id, bound.genesis_hash, bound.deploy_block)
        )
        raise DeploymentMismatch(
            f"this node's database belongs to {there}, but the ledger now is {here}: its tasks, "
            "results and index would collide with the new ones. Start the node with a new home "
            "(or database URL), or move the old database aside to keep it"
        )
    if bound_deployment(engine) is None:
        with Session(engine) as session:
            session.add(
                DeploymentBinding(
                    chain_id=deployment.chain_id,
                    genesis_hash=deployment.genesis_hash,
                    deploy_block=deployment.deploy_block,
                    addresses=json.dumps(deployment.addresses, sort_keys=True),
                )
            )
            session.commit()
        logger.info("node database bound to %s", here)


def _same(bound: DeploymentBinding, deployment: Deployment) -> bool:
    return (
        bound.chain_id == deployment.chain_id
        and bound.genesis_hash == deployment.genesis_hash
        and bound.deploy_block == deployment.deploy_block
        and json.loads(bound.addresses) == deployment.addresses
    )
