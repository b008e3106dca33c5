"""Everything a running node holds: settings, database, keys, the ledger, the peer mailbox.

A node acts for one organisation through one account (the node account, kept in the node's
keystore); data-owner and operator actions of its users are signed with their own accounts when the
keystore holds them (custodial), or arrive signed (non-custodial).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine
from web3 import Web3

from privledger.config import DEV_KEYSTORE_PASSWORD, NodeSettings, Settings
from privledger.evm.anvil import DEFAULT_CHAIN_ID
from privledger.evm.artifacts import Artifact, load_artifacts
from privledger.evm.contracts import Role
from privledger.evm.deploy import Deployment, load_deployment
from privledger.evm.indexer import EventIndexer
from privledger.evm.ledger import Ledger
from privledger.node.binding import DeploymentMismatch, bind_store
from privledger.node.keystore import (
    DEV_SCRYPT_N,
    STANDARD_SCRYPT_N,
    Keystore,
    node_public_key,
)
from privledger.node.peer_auth import SignedPeerCalls
from privledger.node.policy import Policies, PolicyError
from privledger.node.tls import ChainTrust, ChainVerifiedContext
from privledger.node.transport import Mailbox
from privledger.store.db import make_engine

logger = logging.getLogger(__name__)

NODE_FILE = "node.json"
ROLE_CACHE_S = 5.0


class NodeSetupError(RuntimeError):
    """The node cannot start: missing key, deployment or registration."""


def init_node_home(settings: NodeSettings, private_key: bytes | str) -> LocalAccount:
    """Create the node's home: keystore with the node account and the node key, and node.json.
    A home under the public development password gets a cheap scrypt (keystore.DEV_SCRYPT_N);
    every other home the standard cost."""
    development = settings.keystore_password == DEV_KEYSTORE_PASSWORD
    scrypt_n = DEV_SCRYPT_N if development else STANDARD_SCRYPT_N
    keystore = Keystore(settings.keystore_dir, settings.keystore_password, scrypt_n=scrypt_n)
    account = keystore.import_key(private_key)
    keystore.node_key()
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / NODE_FILE).write_text(json.dumps({"account": account.address}, indent=2))
    return account


@dataclass
class NodeContext:
    settings: NodeSettings
    engine: Engine
    keystore: Keystore
    account: LocalAccount
    node_key: X25519PrivateKey
    ledger: Ledger
    org_id: int
    mailbox: Mailbox
    http: httpx.Client
    indexer: EventIndexer
    policies: Policies
    _role_cache: dict[tuple[str, int], tuple[bool, float]] = field(default_factory=dict)
    _role_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def artifacts(self) -> dict[str, Artifact]:
        return self.ledger.artifacts

    def ledger_for(self, address: str) -> Ledger:
        """The ledger signed by ``address`` (custodial: its key is in this node's keystore)."""
        if address.lower() == self.account.address.lower():
            return self.ledger
        return self.ledger.as_account(self.keystore.account(address))

    def has_role(self, address: str, role: Role) -> bool:
        """Whether ``address`` holds ``role`` in this node's org, cached for a few seconds."""
        key = (address.lower(), int(role))
        now = time.monotonic()
        with self._role_lock:
            cached = self._role_cache.get(key)
            if cached is not None and cached[1] > now:
                return cached[0]
        holds = self.ledger.orgs.has_org_role(self.org_id, address, role)
        with self._role_lock:
            self._role_cache[key] = (holds, now + ROLE_CACHE_S)
        return holds

    def close(self) -> None:
        self.http.close()
        self.engine.dispose()


def _deployment(settings: NodeSettings, w3: Web3) -> Deployment:
    if settings.deployment_file is not None:
        if not settings.deployment_file.is_file():
            raise NodeSetupError(f"no deployment file at {settings.deployment_file}")
        return Deployment.from_json(json.loads(settings.deployment_file.read_text()))
    deployment = load_deployment(Settings().deployments_dir, w3.eth.chain_id)
    if deployment is None:
        raise NodeSetupError("the ledger is not deployed on this chain: run `privledger deploy`")
    return deployment


def open_node(settings: NodeSettings) -> NodeContext:
    """Open the node's keys and database, connect to the chain, find the organisation."""
    w3 = Web3(Web3.HTTPProvider(settings.rpc_url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise NodeSetupError(f"no chain answers at {settings.rpc_url}")
    if settings.keystore_password == DEV_KEYSTORE_PASSWORD and w3.eth.chain_id != DEFAULT_CHAIN_ID:
        raise NodeSetupError("set PRIVLEDGER_KEYSTORE_PASSWORD: the development default is refused")
    node_file = settings.home / NODE_FILE
    if not node_file.is_file():
        raise NodeSetupError(f"{settings.home} is not a node home: run `privledger node init`")
    settings.import_dir.mkdir(mode=0o700, exist_ok=True)  # files register by path from here only
    keystore = Keystore(settings.keystore_dir, settings.keystore_password)
    account = keystore.account(json.loads(node_file.read_text())["account"])
    artifacts = load_artifacts(Settings().build_dir / "contracts")
    deployment = _deployment(settings, w3)
    ledger = Ledger.connect(w3, artifacts, deployment, account)
    org_id = ledger.orgs.org_of(account.address)
    if org_id == 0:
        raise NodeSetupError(f"{account.address} is not a member of any organisation on chain")
    engine = make_engine(settings.resolved_database_url)
    try:
        bind_store(engine, w3, deployment)
    except DeploymentMismatch as exc:
        engine.dispose()
        raise NodeSetupError(str(exc)) from exc
    return NodeContext(
        settings=settings,
        engine=engine,
        keystore=keystore,
        account=account,
        node_key=keystore.node_key(),
        ledger=ledger,
        org_id=org_id,
        mailbox=Mailbox(local_org=org_id),  # a frame for another org is refused (400)
        # its calls to other nodes' peer routes (task specs, frame streams) are signed for
        # its organisation
        # a peer serving HTTPS is accepted only with the certificate the chain vouches for
        http=httpx.Client(
            timeout=httpx.Timeout(30.0),
            auth=SignedPeerCalls(account, org_id),
            verify=ChainVerifiedContext(ChainTrust(ledger.orgs)),
        ),
        indexer=EventIndexer(w3, deployment, artifacts, engine),
        policies=_policies(settings),
    )


def _policies(settings: NodeSettings) -> Policies:
    try:
        return Policies.load(settings.policy_file)
    except PolicyError as exc:
        raise NodeSetupError(str(exc)) from exc


def publish_endpoint(node: NodeContext) -> None:
    """Register this node's endpoint and X25519 key on chain when they changed."""
    org = node.ledger.orgs.get_org(node.org_id)
    key = node_public_key(node.node_key)
    if org.endpoint != node.settings.endpoint or org.node_key != key:
        node.ledger.orgs.update_node(node.org_id, node.settings.endpoint, key)
        logger.info("published endpoint %s for org %d", node.settings.endpoint, node.org_id)


def node_home(base: Path, org: str) -> Path:
    return base / "nodes" / org
