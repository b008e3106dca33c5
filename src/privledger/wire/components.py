"""The installed computation components, as ``GET /components`` answers (docs/components.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from privledger.wire.body import Reply


class ComponentOut(Reply):
    name: str = Field(description="the component's id")
    version: str
    hash: str = Field(description="SHA-256 of its code, as task specs and grant terms name it")
    protocols: list[str] = Field(description="the spec protocols it runs")
    kind: str = Field(description="its computation kind on chain: psi, pir, stats or fl")
    min_parties: int = Field(description="the fewest inputs a task gives it")
    max_parties: int = Field(description="the most inputs")
    roles: list[str]
    outputs: list[str] = Field(description="what it may release, as grant terms name it")
    output_schema: str = Field(description="one line of its result, in words")
    enforces: list[str] = Field(description="the grant terms its provider side enforces")
    security: str = Field(description="its adversary model and what each party learns")
    params: dict[str, Any] | None = Field(description="the JSON schema of its params, if any")
    builtin: bool = Field(description="privledger's own (keeps its own protocol id on chain)")
