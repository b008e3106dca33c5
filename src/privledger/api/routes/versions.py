"""The published, versioned API documents and their changelog (F20).

``info.version`` of the node API's OpenAPI document is a semantic version of the API (not of the
package): a minor release adds routes or optional fields, a major release (a new ``/api/vN``
prefix) removes or changes them. The current document is served at ``/api/v1/openapi.json`` and,
under a path that names its version and never changes meaning, at
``/api/v1/openapi/<version>.json``; ``/api/v1/openapi/changelog`` lists what each version added.
The interop API (``/api/interop/v1``) publishes its own document the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from privledger.api.errors import ApiError
from privledger.api.schemas import Body

router = APIRouter(prefix="/openapi", tags=["system"])

CHANGELOG: dict[str, list[str]] = {
    "1.0.0": [
        "system (health, orgs), datasets, grants, approvals, non-custodial transactions, tasks, "
        "PSI services and their call logs, models, peer endpoints",
    ],
    "1.1.0": [
        "audit log (/audit); projects (/projects) and the workflow inbox (/workflow)",
        "onboarding portal (/onboarding/applications): apply and track without a token; list, "
        "review, approve (custodial or relayed signed transactions) and reject as the "
        "consortium admin",
        "versioned documents: /openapi/{version}.json and /openapi/changelog",
        "the BFIA-style interop API under /api/interop/v1, with its own versioned document",
    ],
    "1.2.0": [
        "long-poll for task state: GET /tasks/{id}?waitS=N&unlessStatus=S answers when the "
        "status differs from S (without S: when the task is settled or failed) or after N s",
    ],
    "1.3.0": [
        "operation ids are the routes' names (issue_grant, submit_task, ...)",
        "every operation documents its error answers as ErrorResponse "
        '({"error": {"code", "message"}}), 422 included',
        "GET /peer/tasks/{id}/spec answers only a call signed by another participant's node "
        "(headers x-source-node-id, x-target-node-id, x-nonce, x-timestamp, x-auth-sign)",
        "a frame on a route no channel of the node expects is refused with 429; a body without "
        "Content-Length is limited like one with it; GET /audit/{id}/proof answers 409 "
        "log_mismatch for an entry or batch that no longer matches its anchor",
        "tokens for org admins: GET /tokens (never the secrets), POST /tokens/{id}/revoke; "
        "a token expires (401 'expired API token')",
        "POST /datasets/upload: a dataset as the streamed request body (CSV or Parquet); "
        "POST /datasets takes only a file of the organisation's import directory (400 "
        "not_importable otherwise)",
        "every task output is one result file, JSON Lines (one JSON string per item and line): "
        "GET /tasks/{id}/result/file serves it as application/jsonl (it was a JSON list, or "
        "one raw item per line for bucketed PSI) and the anchored digest commits to it; "
        "GET /tasks/{id}/result gives its items in its order (409 too_large past a million)",
    ],
}


class ChangelogEntry(Body):
    version: str
    changes: list[str]


def versioned_document(request: Request, version: str) -> dict[str, Any]:
    """The application's OpenAPI document if ``version`` is the one it publishes, else a 404."""
    published: str = request.app.version
    if version != published:
        raise ApiError(
            404, "not_found", f"this node publishes version {published} only, not {version}"
        )
    document: dict[str, Any] = request.app.openapi()
    return document


@router.get("/changelog", response_model=list[ChangelogEntry])
def changelog(request: Request) -> list[ChangelogEntry]:
    """What each version of this API added, oldest first."""
    entries: dict[str, list[str]] = getattr(request.app.state, "changelog", CHANGELOG)
    return [ChangelogEntry(version=version, changes=notes) for version, notes in entries.items()]


@router.get("/{version}.json", response_class=JSONResponse)
def openapi_document(
    request: Request,
    version: str = Path(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description="e.g. 1.1.0"),
) -> JSONResponse:
    """The OpenAPI document of the node API at ``version`` (the one this node serves)."""
    return JSONResponse(versioned_document(request, version))
