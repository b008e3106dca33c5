"""The bases of every body: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Body(BaseModel):
    """A request body: an unknown field is refused (a misspelt option must not pass unseen)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Reply(Body):
    """A response body: a field a newer node adds is ignored, so an older SDK still reads it."""

    model_config = ConfigDict(extra="ignore")
