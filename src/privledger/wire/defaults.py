"""Defaults the SDK and the command line share: plain values, no pydantic, so the command line
names them in its help without importing the SDK (``privledger --help`` stays fast)."""

from __future__ import annotations

PIPELINE_PARALLEL = 4  # steps of a pipeline run at once (privledger.sdk.pipeline)
