"""An approval request on a data owner's dataset: the task's verified spec, term by term against
the owner's terms."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from privledger.wire.body import Reply

SpecStatus = Literal["verified", "unreachable", "mismatch"]
GrantState = Literal["usable", "expired", "used_up", "revoked", "other_kind"]


class ColumnUseOut(Reply):
    column: str
    use: str = Field(description="what the task does with the column: join, aggregate, retrieve")


class RequestOut(Reply):
    """A pending task as it concerns the owner's dataset, read from its verified spec."""

    protocol: str
    column_uses: list[ColumnUseOut] = Field(description="each column of the owner's input")
    output: str = Field(description="who learns the result (size: both, only its size)")
    recipients: list[int] = Field(description="the organisations that learn the result")
    dealer_org: int | None = Field(description="the dealer or aggregator the task names")
    participants: list[int]


class TermCheckOut(Reply):
    """One term: what the request asks beside what the terms allow."""

    term: str = Field(description="the term's name in the terms document")
    requested: str
    allowed: str
    kept: bool = Field(description="False for the term the request breaks")


class TermsReviewOut(Reply):
    """The request held to one set of terms of the owner's: a grant it gave the requester on
    this dataset (whatever its state), or, with none, the default terms of the task's kind."""

    source: Literal["grant", "default"]
    grant_id: str | None = None
    grant_state: GrantState | None = Field(
        default=None,
        description="the grant now: revoked, expired, used up, for another kind of task, or "
        "usable (then its terms refuse the task, or it was issued after the submission)",
    )
    purpose: str = ""
    violation: str | None = Field(description="the term the request breaks and why, or None")
    terms: list[TermCheckOut]


class ApprovalOut(Reply):
    task_id: int
    dataset: str
    requester_org: int
    status: str
    protocol: str = Field(description="the protocol the task names on chain")
    fee_wei: int = Field(description="the fee the task escrows")
    spec_status: SpecStatus | None = Field(
        default=None,
        description="the spec fetched from the requester's node: verified against the spec hash "
        "and the task on chain, unreachable, or mismatch (only a verified spec can be approved); "
        "None when the request no longer waits",
    )
    spec_message: str | None = Field(default=None, description="why the spec is not verified")
    request: RequestOut | None = Field(default=None, description="with a verified spec")
    reviews: list[TermsReviewOut] = Field(
        default=[], description="the request against the owner's terms, with a verified spec"
    )
