"""Every choice the command line offers, as an Enum: ``--help`` lists the values and a wrong one is
refused with the list before anything runs.

Each mirrors a definition of the node, the chain facades or the SDK, which the command line does
not import up front (web3, numpy and pydantic would cost ``privledger --help`` seconds);
``tests/test_cli_choices.py`` checks that every mirror equals what it mirrors.
"""

from __future__ import annotations

from enum import StrEnum


class Output(StrEnum):
    """How a command prints its data: a table for people, JSON for programs."""

    TABLE = "table"
    JSON = "json"


class TaskKind(StrEnum):
    """``privledger.node.spec.TaskKind``: what a grant allows."""

    PSI = "psi"
    PIR = "pir"
    STATS = "stats"
    FL = "fl"


class PsiProtocol(StrEnum):
    """``privledger.node.spec.PsiProtocol``."""

    ECDH = "ecdh"
    KKRT = "kkrt"
    RR22 = "rr22"


class PsiOutput(StrEnum):
    """``privledger.node.spec.PsiOutput``: who learns a two-party PSI's result."""

    REQUESTER = "requester"
    BOTH = "both"
    SIZE = "size"


class TaskProtocol(StrEnum):
    """``privledger.node.spec.TaskProtocol``: every protocol a task can name."""

    ECDH = "ecdh"
    KKRT = "kkrt"
    RR22 = "rr22"
    INTERSECTION3 = "intersection3"
    UNION3 = "union3"
    DIFFERENCE = "difference"
    MEMBERSHIP = "membership"
    SIMPLEPIR = "simplepir"
    BUCKET = "bucket"
    JOINT_STATS = "joint-stats"
    LENDING_TOTAL = "lending-total"
    LENDING_EXCEEDS = "lending-exceeds"
    VERTICAL_LR = "vertical-lr"
    HORIZONTAL_LR = "horizontal-lr"
    HORIZONTAL_MLP = "horizontal-mlp"
    PREDICT = "predict"
    VERTICAL_PREDICT = "vertical-predict"
    VERTICAL_GBDT = "vertical-gbdt"


class PirMode(StrEnum):
    """How ``query pir`` hides the keys: ``pir`` fully, ``bucket`` k-anonymously."""

    PIR = "pir"
    BUCKET = "bucket"


class StatsOp(StrEnum):
    """``privledger.sdk.bodies.STATS_OPS``."""

    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    VARIANCE = "variance"
    HISTOGRAM = "histogram"


class ChainRole(StrEnum):
    """``privledger.evm.contracts.Role``'s names, lower case: roles of an account on chain."""

    ORG_ADMIN = "org_admin"
    DATA_OWNER = "data_owner"
    OPERATOR = "operator"
    AUDITOR = "auditor"


ROLE_BITS = {
    ChainRole.ORG_ADMIN: 1,
    ChainRole.DATA_OWNER: 2,
    ChainRole.OPERATOR: 4,
    ChainRole.AUDITOR: 8,
}
"""``privledger.evm.contracts.Role``'s values."""


class TokenRole(StrEnum):
    """The role an API token carries: one of the account's roles on chain, or the consortium
    admin's (``privledger.api.routes.onboarding.CONSORTIUM_ADMIN``, onboarding reviews)."""

    ORG_ADMIN = "org_admin"
    DATA_OWNER = "data_owner"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    CONSORTIUM_ADMIN = "consortium_admin"


class RequestedRole(StrEnum):
    """``privledger.api.routes.onboarding.RoleName``: roles an applicant asks for besides org
    admin."""

    DATA_OWNER = "data_owner"
    OPERATOR = "operator"
    AUDITOR = "auditor"


class ApplicationStatus(StrEnum):
    """``privledger.api.routes.onboarding.ApplicationStatus.status``: an onboarding
    application's."""

    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Scenario(StrEnum):
    """``privledger.demo.SCENARIOS``."""

    PSI = "psi"
    FRAUD = "fraud"


TASK_STATUSES = ("none", "submitted", "authorised", "running", "completed", "failed", "settled")
"""``privledger.evm.contracts.TaskStatus``'s names, lower case, by value."""
FAILURE_REASONS = (
    "",
    "rejected",
    "expired",
    "spec_mismatch",
    "grant_invalid",
    "protocol_error",
    "peer_unreachable",
    "policy_violation",
    "terms_violation",
    "component_mismatch",
)
"""``privledger.evm.contracts.FailureReason``'s names, lower case, by value (0: none)."""
KIND_BITS = {TaskKind.PSI: 1, TaskKind.PIR: 2, TaskKind.STATS: 4, TaskKind.FL: 8}
"""``privledger.evm.contracts.Kind``'s values."""
