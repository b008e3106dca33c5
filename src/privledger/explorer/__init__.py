"""The auditor explorer served by every node: tasks, their on-chain story, result verification."""

from privledger.explorer.routes import router

__all__ = ["router"]
