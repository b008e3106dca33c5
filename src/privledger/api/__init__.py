"""The node's REST API under /api/v1."""
