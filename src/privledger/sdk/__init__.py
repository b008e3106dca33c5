"""Python SDK for analysts, data owners and PSI-service callers: talk to your organisation's node.

Its answers are the API's own response models (:mod:`privledger.wire`), its errors one hierarchy
(:mod:`privledger.sdk.errors`). It imports httpx, pydantic and those models only, so it installs
without the node stack: the ``privledger-sdk`` distribution (``sdk/pyproject.toml``).
"""

from privledger.sdk.answers import (
    LendingAnswer,
    PirAnswer,
    PsiAnswer,
    ServiceResult,
    StatsAnswer,
    TaskAnswer,
)
from privledger.sdk.bodies import TaskBody, lending_task, pir_task, psi_task, stats_task
from privledger.sdk.client import NodeClient
from privledger.sdk.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NodeUnreachable,
    NotFound,
    PrivledgerError,
    RateLimited,
    TaskFailed,
    TaskTimeout,
    Unauthorized,
    ValidationFailed,
)

__all__ = [
    "ApiError",
    "Conflict",
    "Forbidden",
    "LendingAnswer",
    "NodeClient",
    "NodeUnreachable",
    "NotFound",
    "PirAnswer",
    "PrivledgerError",
    "PsiAnswer",
    "RateLimited",
    "ServiceResult",
    "StatsAnswer",
    "TaskAnswer",
    "TaskBody",
    "TaskFailed",
    "TaskTimeout",
    "Unauthorized",
    "ValidationFailed",
    "lending_task",
    "pir_task",
    "psi_task",
    "stats_task",
]
