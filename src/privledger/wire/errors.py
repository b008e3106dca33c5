"""The body of every error answer of the API: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: not_found, invalid_request, forbidden, ...")
    message: str = Field(description="what went wrong, for a person")


class ErrorResponse(BaseModel):
    """The body of every error answer of the API."""

    error: ErrorDetail
