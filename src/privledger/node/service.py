"""Run a node: open it, publish its endpoint and key on chain, start the worker, serve the API."""

from __future__ import annotations

import logging

import uvicorn

from privledger.api.app import create_app
from privledger.config import NodeSettings
from privledger.node.context import open_node, publish_endpoint
from privledger.node.worker import Worker

logger = logging.getLogger(__name__)


def serve(settings: NodeSettings) -> None:
    """Serve until interrupted; the worker stops with the server."""
    node = open_node(settings)
    publish_endpoint(node)
    worker = Worker(node)
    worker.start()
    logger.info("node %s (org %d) serving on %s", settings.org, node.org_id, settings.endpoint)
    try:
        uvicorn.run(
            create_app(node),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    finally:
        worker.stop()
        node.close()
