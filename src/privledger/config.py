"""Typed settings for every privledger process, read from ``PRIVLEDGER_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import IPvAnyNetwork, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

from privledger import defaults
from privledger.observability.logs import LogLevel


def _default_project_root() -> Path:
    """The source checkout when running from one (editable install), else the working directory."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "contracts").is_dir() and (checkout / "chain").is_dir():
        return checkout
    return Path.cwd()


class Settings(BaseSettings):
    """Where things live and how to reach the chain.

    Paths default to the project checkout: ``contracts/`` for Solidity sources, ``chain/`` for the
    pinned npm toolchain and deployment records, ``build/`` for compiled artifacts and ``var/`` for
    runtime state (chain state file, node databases).
    """

    model_config = SettingsConfigDict(env_prefix="PRIVLEDGER_", extra="ignore")

    project_root: Path = _default_project_root()
    rpc_url: str = defaults.RPC_URL
    chain_port: int = defaults.CHAIN_PORT
    receipt_timeout_s: float = 30.0
    var_path: Path | None = None
    deployments_path: Path | None = None

    @cached_property
    def contracts_dir(self) -> Path:
        return self.project_root / "contracts"

    @cached_property
    def chain_dir(self) -> Path:
        return self.project_root / "chain"

    @cached_property
    def build_dir(self) -> Path:
        return self.project_root / "build"

    @cached_property
    def var_dir(self) -> Path:
        """Runtime state; ``PRIVLEDGER_VAR_PATH`` moves it."""
        return self.var_path or self.project_root / "var"

    @cached_property
    def deployments_dir(self) -> Path:
        """Deployment records; ``PRIVLEDGER_DEPLOYMENTS_PATH`` moves them."""
        return self.deployments_path or self.chain_dir / "deployments"

    @cached_property
    def chain_state_file(self) -> Path:
        return self.var_dir / "chain" / "state.json"


def get_settings() -> Settings:
    return Settings()


DEV_KEYSTORE_PASSWORD = "privledger-dev"


class NodeSettings(BaseSettings):
    """One organisation node: where its home is, how it is reached, how it reaches the chain.

    The keystore password comes from ``PRIVLEDGER_KEYSTORE_PASSWORD``; the development default is
    accepted only on the local development chain (refused by the node elsewhere).
    """

    model_config = SettingsConfigDict(env_prefix="PRIVLEDGER_", extra="ignore")

    org: str
    home: Path
    host: str = defaults.HOST
    port: int = defaults.NODE_PORT  # the client API (every API process of the node)
    # the peer endpoint, published on chain, served by the process that runs the tasks; the
    # API port when unset (a node of several API processes needs one of its own)
    peer_port: int | None = None
    api_workers: PositiveInt = 1  # processes serving the client API (more: PostgreSQL only)
    public_url: str | None = None
    rpc_url: str = defaults.RPC_URL
    deployment_file: Path | None = None
    database_url: str | None = None
    keystore_password: str = DEV_KEYSTORE_PASSWORD
    worker_interval_s: float = 0.5
    channel_timeout_s: float = 120.0
    audit_anchor_s: float = 10.0  # how often new audit-log entries are anchored on chain
    policy_file: Path | None = None  # classification policies over the defaults
    max_json_body_bytes: int = 1 << 20
    max_frame_bytes: int = 8 << 20
    max_upload_bytes: int = 4 << 30  # a dataset streamed to POST /datasets/upload
    tls: bool = False  # serve HTTPS with a certificate bound to the chain (node/tls.py)
    # a Ray cluster's head (host:port): bucketed PSI runs its buckets there (docs/ray.md)
    ray_address: str | None = None
    # calls without credentials (or whose credentials fail), per client address: this many a
    # second, this many at once; answered 429 beyond them
    anonymous_calls_per_s: PositiveFloat = 10.0
    anonymous_burst: PositiveInt = 100
    anonymous_audit_s: PositiveFloat = 10.0  # anonymous calls are logged as counts per interval
    # the node's log: its level (unset: what the command line chose, warning or -v's info), one
    # line a request (uvicorn's access log), JSON lines instead of text (docs/operations.md)
    log_level: LogLevel | None = None
    access_log: bool = False
    log_json: bool = False
    # an onboarding application nobody decided expires this many days after it was submitted
    onboarding_expiry_days: PositiveInt = 30
    # reverse proxies in front of the node's API (addresses or networks, a JSON list): only a
    # connection from one of them has its X-Forwarded-For read, and the client is the right-most
    # address there that is not one of them; empty, the client is always the connection's peer
    trusted_proxies: list[IPvAnyNetwork] = []

    @property
    def endpoint(self) -> str:
        """The URL peers reach this node at (registered on chain)."""
        scheme = "https" if self.tls else "http"
        return self.public_url or f"{scheme}://{self.host}:{self.peer_port or self.port}"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'node.db'}"

    @property
    def keystore_dir(self) -> Path:
        return self.home / "keystore"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def import_dir(self) -> Path:
        """The one directory whose files register by path (``POST /datasets``): the home's
        ``import/``, per organisation and so per tenant; it may be a symlink to the data's disk."""
        return self.home / "import"

    @property
    def results_dir(self) -> Path:
        return self.home / "results"

    @property
    def tls_cert_file(self) -> Path:
        return self.home / "tls" / "cert.pem"

    @property
    def tls_key_file(self) -> Path:
        return self.home / "tls" / "key.pem"
