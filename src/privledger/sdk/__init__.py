"""Python SDK for analysts and PSI-service callers: talk to your organisation's node."""

from privledger.sdk.client import (
    LendingAnswer,
    NodeClient,
    PirAnswer,
    PrivledgerError,
    PsiAnswer,
    ServiceResult,
    StatsAnswer,
    TaskAnswer,
    TaskFailed,
    lending_task,
    pir_task,
    psi_task,
    stats_task,
)

__all__ = [
    "LendingAnswer",
    "NodeClient",
    "PirAnswer",
    "PrivledgerError",
    "PsiAnswer",
    "ServiceResult",
    "StatsAnswer",
    "TaskAnswer",
    "TaskFailed",
    "lending_task",
    "pir_task",
    "psi_task",
    "stats_task",
]
