"""Verify a result file against the digest its participant anchored on chain.

A worker anchors ``keccak256(abi.encode(taskId, org, salt, sha256(output)))`` where ``output`` is
the result file of its items (JSON Lines, :mod:`privledger.node.results`). Given the file (``GET
/api/v1/tasks/{id}/result/file``, salt in its ``X-Result-Salt`` header) or the items and the salt
(``GET /api/v1/tasks/{id}/result``), anyone can recompute the digest and check it against the
``ResultAnchored`` event and the ledger's ``verifyAnchor``. Items are taken in the order given: it
is the order of the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlmodel import Session

from privledger.node import results
from privledger.node.context import NodeContext
from privledger.node.worker import digest_of_hash
from privledger.store.events import events_named
from privledger.wire.numerals import ascii_number

from .story import task_exists


class VerifyInputError(Exception):
    """The request cannot be checked: ``status`` 400 (bad input) or 404 (unknown task)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Verdict:
    task_id: int
    org_id: int
    verified: bool
    computed_digest: str
    anchored_digest: str | None
    transcript_hash: str | None
    anchor_matches_ledger: bool
    item_count: int | None  # None: verified from the file's SHA-256, its items not seen
    reasons: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_task_id(text: str) -> int:
    number = ascii_number(text.strip())
    if number is None:
        raise VerifyInputError(400, "invalid_request", "the task id is a positive whole number")
    return number


def parse_org_id(text: str) -> int:
    number = ascii_number(text.strip())
    if not number:
        raise VerifyInputError(400, "invalid_request", "the participant org id is a number ≥ 1")
    return number


def parse_salt(text: str) -> bytes:
    return _hex32(text, "invalid_salt", "the salt")


def parse_sha256(text: str) -> bytes:
    """A result file's SHA-256, for a file too large to upload (``sha256sum`` computes it)."""
    return _hex32(text, "invalid_sha256", "the result file's SHA-256")


def _hex32(text: str, code: str, what: str) -> bytes:
    raw = text.strip()
    raw = raw[2:] if raw.lower().startswith("0x") else raw
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise VerifyInputError(
            400, code, f"{what} is 32 bytes of hex (0x followed by 64 hex digits)"
        )
    return value


def parse_items(content: bytes) -> tuple[list[str], str | None]:
    """The items of an upload: the result file itself (JSON Lines), a JSON list of strings, or
    the result object with ``items`` (whose ``salt``, if any, is returned too)."""
    if not content.lstrip().startswith((b"[", b"{")):  # a result file's lines start with '"'
        try:
            return results.parse(content), None
        except results.ResultFormatError as exc:
            raise VerifyInputError(
                400, "invalid_file", f"the result file is not a result file: {exc}"
            ) from exc
    try:
        document = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerifyInputError(400, "invalid_file", "the result file is not JSON") from exc
    salt = None
    if isinstance(document, dict):
        if isinstance(document.get("salt"), str):
            salt = document["salt"]
        document = document.get("items")
    if not isinstance(document, list) or not all(isinstance(item, str) for item in document):
        raise VerifyInputError(
            400,
            "invalid_file",
            "the result file is JSON Lines as GET /tasks/{id}/result/file serves it, a JSON "
            "list of strings, or a result object with such 'items'",
        )
    return document, salt


def verify_result(
    node: NodeContext, task_id: int, org_id: int, salt: bytes, items: list[str]
) -> Verdict:
    """Recompute the digest of the result file of ``items`` and compare it with what ``org_id``
    anchored for the task."""
    try:
        output = results.encode(items)
    except results.ResultFormatError as exc:
        raise VerifyInputError(400, "invalid_file", str(exc)) from exc
    return verify_output(node, task_id, org_id, salt, hashlib.sha256(output).digest(), len(items))


def verify_output(
    node: NodeContext,
    task_id: int,
    org_id: int,
    salt: bytes,
    output_sha256: bytes,
    item_count: int | None,
) -> Verdict:
    """Recompute the digest from the result file's SHA-256 and compare it with what ``org_id``
    anchored for the task."""
    if not task_exists(node, task_id):
        raise VerifyInputError(404, "not_found", f"task {task_id} not found on the ledger")
    task = node.ledger.tasks.get_task(task_id)
    if org_id not in task.participants:
        raise VerifyInputError(
            400,
            "not_a_participant",
            f"org {org_id} is not a participant of task {task_id} "
            f"(participants: {', '.join(str(p) for p in task.participants)})",
        )
    computed = digest_of_hash(task_id, org_id, salt, output_sha256)
    verdict = Verdict(
        task_id=task_id,
        org_id=org_id,
        verified=False,
        computed_digest="0x" + computed.hex(),
        anchored_digest=None,
        transcript_hash=None,
        anchor_matches_ledger=False,
        item_count=item_count,
    )
    node.indexer.sync()
    with Session(node.engine) as session:
        anchored = [
            e
            for e in events_named(session, ["ResultAnchored"], task_id=task_id)
            if int(e.args["org"]) == org_id
        ]
    if not anchored:
        verdict.reasons.append(f"org {org_id} has anchored no result for task {task_id}")
        return verdict
    event = anchored[-1]
    verdict.anchored_digest = str(event.args["resultDigest"])
    verdict.transcript_hash = str(event.args["transcriptHash"])
    transcript = bytes.fromhex(verdict.transcript_hash[2:])
    anchored_digest = bytes.fromhex(verdict.anchored_digest[2:])
    verdict.anchor_matches_ledger = node.ledger.tasks.verify_anchor(
        task_id, org_id, anchored_digest, transcript
    )
    if not verdict.anchor_matches_ledger:
        verdict.reasons.append("the ResultAnchored event does not match the ledger's commitment")
    if computed != anchored_digest:
        verdict.reasons.append(
            "the digest of this file and salt differs from the anchored digest: "
            "the file, the salt or the participant is not the one anchored"
        )
    elif not node.ledger.tasks.verify_anchor(task_id, org_id, computed, transcript):
        verdict.reasons.append("the ledger's verifyAnchor refuses the recomputed digest")
    verdict.verified = not verdict.reasons
    return verdict
