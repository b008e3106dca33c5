"""The published, versioned API documents and their changelog (F20).

``info.version`` of the node API's OpenAPI document is a semantic version of the API (not of the
package): a minor release adds routes or optional fields, a major release (a new ``/api/vN``
prefix) removes or changes them. The current document is served at ``/api/v1/openapi.json`` and,
under a path that names its version and never changes meaning, at
``/api/v1/openapi/<version>.json``; ``/api/v1/openapi/changelog`` lists what each version added.
Every earlier version in the changelog stays published: its document, as the node served it
then, is kept in ``privledger/api/openapi/node-<version>.json`` (taken from the commit where that
version was current; a release that bumps the version adds the snapshot of the one it replaces).
The interop API (``/api/interop/v1``) publishes its own document the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParameter
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
    ],
    "1.4.0": [
        "POST /datasets/upload: a dataset as the streamed request body (CSV or Parquet); "
        "POST /datasets takes only a file of the organisation's import directory (400 "
        "not_importable otherwise)",
        "changed: every task output is one result file, JSON Lines (one JSON string per item "
        "and line): GET /tasks/{id}/result/file serves it as application/jsonl (it was a JSON "
        "list, or one raw item per line for bucketed PSI) and the anchored digest commits to "
        "it; GET /tasks/{id}/result gives its items in its order (409 too_large past a million)",
        "POST /tasks: the spec is typed per protocol (canonical spec version 2); an option the "
        "protocol does not take (a dealer on PSI, buckets on PIR, output both on a set "
        "operation) is refused by name (400 invalid_task) instead of ignored",
        "output size (ECDH-PSI): both parties learn only the intersection's size (the result's "
        "one item); grant terms' outputs may list size, and terms allowing requester allow it",
        "GET /approvals shows each request term by term against the owner's grants (specStatus, "
        "request, reviews); GET /approvals/{task}/{dataset}; approving a request whose spec "
        "the requester's node does not serve or that does not match the chain is refused "
        "(502 requester_unreachable, 409 spec_mismatch)",
        "peer channel wire version 2: each channel opens with a Noise KK handshake "
        "(docs/peer-channel.md); frames of wire version 1 are dropped",
        "a node whose index the chain no longer matches (the chain reset below the deployment) "
        "answers 503 chain_unavailable; with PRIVLEDGER_TLS a node serves HTTPS with a "
        "certificate its organisation's admin endorsed on chain",
        "calls without credentials (or whose credentials prove nobody) are rate-limited per "
        "client address: 429 rate_limited with Retry-After (PRIVLEDGER_ANONYMOUS_CALLS_PER_S, "
        "PRIVLEDGER_ANONYMOUS_BURST), and audited as one entry per route, method and status "
        "and interval ('<status> x<count>'), not one entry each; verified signed peer and "
        "interop calls are logged as 'peer org N'",
        "GET /openapi/{version}.json serves every version of this changelog, not only the "
        "current one",
        "changed: a vertical-lr task keeps its model secret-shared (each party's result holds its "
        "shares and every party's commitment, no weights); output weights opens each party's own "
        "weights and needs grant terms listing weights; POST /models registers such a model "
        "(its label holder); protocol vertical-predict (modelTask, output scores or ids, "
        "threshold) predicts with it jointly; grant terms' outputs may list weights, scores, ids",
        "vertical-lr takes dp (noise_multiplier, clip_norm, delta: the trained model is "
        "differentially private, its budget recorded in every party's result); the dp object's "
        "schema is TrainingDp (was HorizontalDp); grant terms' max_epsilon bounds the budget a "
        "training task may spend and refuses one without dp",
        "grant terms' min_threshold: the lowest threshold a vertical-predict task's output ids "
        "may use (scores refused), checked by every provider before it reads data",
        "protocol rr22 (RR22 VOLE-PSI, outputs requester or both) for two-party PSI tasks, "
        "grant terms and service calls (POST /service-calls protocol rr22)",
        "protocol vertical-gbdt (SecureBoost; gbdt: trees, depth, learning_rate, bins, l2, "
        "min_child_samples, row_subsample, col_subsample, early_stopping_rounds; output "
        "requester or model, the merged model as LightGBM text); POST /models registers its "
        "model and vertical-predict scores with it; grant terms' outputs may list model",
    ],
    "1.5.0": [
        "components (docs/components.md): GET /components lists the installed computation "
        "components (name, version, code hash, protocols, kind, parties, roles, outputs, the "
        "terms each enforces, its security model, its params schema); a task spec (canonical "
        "version 3) names its component (name, version, hash), POST /tasks fills it in or takes "
        "it pinned (component), and takes a vendor component's protocol with its params; a "
        "participant without that component at that hash fails the task with reason 9 "
        "(COMPONENT_MISMATCH)",
        "grant terms' components: the code hashes of the components allowed to touch the "
        "data; protocols may name a vendor component's protocol (protocol id 31 on chain)",
        "POST /datasets/derived: the rows of this node's input to a completed set task whose key "
        "is in the result it learned, registered as a dataset whose parents are the task's "
        "inputs (docs/derived-datasets.md)",
    ],
    "1.6.0": [
        "pipelines (docs/pipelines.md): POST /pipelines records a job (a DAG of task and model "
        "steps, checked), GET /pipelines and /pipelines/{id} show each step's state (a task "
        "step's from its task on chain), PUT /pipelines/{id}/steps/{step} records what the "
        "runner did (task, derived datasets, model, error)",
        "POST /tasks/{id}/derived: the derived datasets of a settled set task this organisation "
        "requested -- its own aligned rows and each partner's, which the partner's node "
        "registers and grants to the requester when the owner's grant consents; the peer route "
        "POST /peer/tasks/{id}/derived serves that request, signed by the requester's node",
        "grant terms' derive (upstreamBps): the owner's standing consent to derived datasets of "
        "set tasks under the grant, granted on under the same terms, expiry and uses",
        "grant terms' price unit contribution: a vertical-gbdt feature owner is paid its aligned "
        "rows times its own share of the splits of every tree grown (docs/grants.md); its "
        "result shows splits, units, paid_by and shapes_agree, the label holder's split_counts",
        "a node with no database connection free in time answers 503 busy with Retry-After "
        "(was 500); each process runs at most 16 requests' code at once, the rest queue; "
        "POST /tasks waits for its block apart from them, holding no database connection",
        "changed: POST /peer/frames takes only a stream signed by the sending organisation's "
        "node (scheme privledger-frames-v1, the signed headers of the peer routes, "
        "x-target-node-id this organisation): 401 unauthorized without a valid signature, 403 "
        "forbidden for a signer that is no operator of the organisation or a frame naming "
        "another sender (docs/peer-channel.md)",
        "changed: the explorer's login routes (/explorer/login, /explorer/api/challenge, "
        "/explorer/api/login) are rate limited per client address like calls without "
        "credentials (429 rate_limited); an operator logs into the cockpit of its own "
        "organisation's node only (403 otherwise), the consortium admin into any; an "
        "organisation's endpoint that is not http(s)://host[:port] with an optional path is "
        "no endpoint to other nodes (docs/explorer.md)",
    ],
}


class ChangelogEntry(Body):
    version: str
    changes: list[str]


SNAPSHOTS = Path(__file__).resolve().parent.parent / "openapi"
"""The documents of earlier versions, ``<api>-<version>.json`` (``api`` as in
``app.state.api_name``: ``node`` or ``interop``)."""


def versioned_document(request: Request, version: str) -> dict[str, Any]:
    """The OpenAPI document of ``version``: the application's own for the version it serves, a
    kept snapshot for an earlier one of its changelog, else a 404 naming what is published."""
    current: str = request.app.version
    if version == current:
        document: dict[str, Any] = request.app.openapi()
        return document
    entries: dict[str, list[str]] = getattr(request.app.state, "changelog", CHANGELOG)
    api = getattr(request.app.state, "api_name", "node")
    snapshot = SNAPSHOTS / f"{api}-{version}.json"
    if version in entries and snapshot.is_file():
        kept: dict[str, Any] = json.loads(snapshot.read_text())
        return kept
    published = [v for v in entries if v == current or (SNAPSHOTS / f"{api}-{v}.json").is_file()]
    raise ApiError(
        404, "not_found", f"versions published here: {', '.join(published)}; not {version}"
    )


@router.get("/changelog", response_model=list[ChangelogEntry])
def changelog(request: Request) -> list[ChangelogEntry]:
    """What each version of this API added, oldest first."""
    entries: dict[str, list[str]] = getattr(request.app.state, "changelog", CHANGELOG)
    return [ChangelogEntry(version=version, changes=notes) for version, notes in entries.items()]


@router.get("/{version}.json", response_class=JSONResponse)
def openapi_document(
    request: Request,
    version: str = PathParameter(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description="e.g. 1.1.0"),
) -> JSONResponse:
    """The OpenAPI document of the API at ``version``: the current one or an earlier one."""
    return JSONResponse(versioned_document(request, version))
