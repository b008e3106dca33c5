"""Where a privledger process listens and looks by default: the one place these values are
written. :mod:`privledger.config`'s settings start from them, and the command line names them in
its help without importing pydantic (``privledger --help`` stays fast)."""

from __future__ import annotations

HOST = "127.0.0.1"  # a node listens here; the local chain too
NODE_PORT = 8000  # a node's client API
NODE_URL = f"http://{HOST}:{NODE_PORT}"  # the client's node: `privledger node run` with defaults
CHAIN_PORT = 8545  # the local anvil
RPC_URL = f"http://{HOST}:{CHAIN_PORT}"  # the chain's JSON-RPC endpoint
