"""Python SDK for analysts and PSI-service callers: talk to your organisation's node."""

from privledger.sdk.client import NodeClient, PrivledgerError, ServiceResult

__all__ = ["NodeClient", "PrivledgerError", "ServiceResult"]
