"""Issuing a grant, a grant's terms as the chain published them, and the choice of the grant a
task runs under."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from weakref import WeakKeyDictionary

from pydantic import ValidationError
from sqlalchemy import Engine, Select, and_, bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from privledger.evm.contracts import Grant
from privledger.evm.ledger import Ledger
from privledger.node.components import KINDS
from privledger.node.context import NodeContext
from privledger.node.pricing import price_violation, submission_charges
from privledger.node.spec import SpecInput, TaskSpec
from privledger.node.terms import GrantTerms, TermViolation, enforces, violation
from privledger.store.events import events_named, grants_consumed_by
from privledger.store.models import ChainEvent, ChainRef

ZERO32 = bytes(32)


def grant_dataset(
    ledger: Ledger,
    *,
    dataset: str,
    grantee_org: int,
    terms: GrantTerms,
    expires_in_s: int,
    max_uses: int,
    until: int | None = None,
) -> bytes:
    """Grant ``grantee_org`` the use of ``dataset`` (0x hex) under ``terms``, signed by the
    ledger's account, for ``expires_in_s`` of chain time (but not past chain time ``until``)
    and ``max_uses`` tasks: the grant id. The terms document goes on chain whole; the registry
    enforces its chain terms itself."""
    expiry = ledger.client.latest_timestamp() + expires_in_s
    if until is not None:
        expiry = min(expiry, until)
    return ledger.grants.grant(
        bytes.fromhex(dataset[2:]),
        grantee_org,
        terms.chain_terms(expiry=expiry, max_uses=max_uses),
        terms.canonical_json(),
    )


def lapse(node: NodeContext, grant: Grant, now: int) -> str | None:
    """Why ``grant`` may not be used at chain time ``now`` (a phrase: "was revoked or expired"),
    or None: revoked or expired itself, or derived (``parentGrant`` on chain) under a grant that
    is revoked or expired -- up the chain of derivations, which the registry checked when it
    issued each link and keeps at most ``MAX_DERIVATIONS`` long. Read from the chain, so a parent
    revoked by any means (the owner's node, or its key on the contract) ends the grants derived
    under it, on every node that checks them. Uses are not counted here: the registry counted the
    task's use on the grant and each of its ancestors at submission, refusing one used up."""
    if grant.revoked or now >= grant.expiry:
        return "was revoked or expired"
    current = grant
    while current.parent_grant != ZERO32:
        current = node.ledger.grants.get_grant(current.parent_grant)
        if current.revoked or now >= current.expiry:
            return f"derives from grant 0x{current.grant_id.hex()}, revoked or expired"
    return None


def revoke_with_derived(node: NodeContext, ledger: Ledger, grant_id: bytes) -> None:
    """Revoke ``grant_id`` (unless it is already) and every live grant derived under it, down the
    chain of derivations, on datasets of this organisation, each a transaction signed by
    ``ledger``'s account. The registry and :func:`lapse` refuse the derived ones anyway; revoked,
    they show so on chain themselves."""
    pending, seen = [grant_id], {grant_id}
    while pending:
        current = pending.pop()
        if not node.ledger.grants.get_grant(current).revoked:
            ledger.grants.revoke(current)
        children = [
            child for child in _derived_under(node, current, node.org_id) if child not in seen
        ]
        seen.update(children)
        pending.extend(children)


def _derived_under(node: NodeContext, grant_id: bytes, owner_org: int) -> list[bytes]:
    """The grants on ``owner_org``'s datasets whose published terms name ``grant_id`` as their
    parent (another organisation naming it has no say over the grant, nor it over theirs)."""
    node.indexer.sync_for("GrantRegistry", "GrantIssued")
    parent = "0x" + grant_id.hex()
    with Session(node.engine) as session:
        issued = events_named(session, ["GrantIssued"])
    found = []
    for event in issued:
        if parent not in event.args["terms"]:  # a cheap test before the parse
            continue
        try:
            named = _parsed_terms(event.args["terms"]).parent_grant
        except ValidationError:
            continue
        dataset = bytes.fromhex(event.args["datasetId"][2:])
        if named == parent and node.ledger.data.get_dataset(dataset).owner_org == owner_org:
            found.append(bytes.fromhex(event.args["grantId"][2:]))
    return found


def consumed_grants(node: NodeContext, task_id: int) -> list[Grant]:
    """The grants task ``task_id`` consumed when it was submitted (one per foreign input it
    covered; an input an owner approved instead has none)."""
    with Session(node.engine) as session:
        consumed = grants_consumed_by(session, task_id)
    return [node.ledger.grants.get_grant(bytes.fromhex(e.args["grantId"][2:])) for e in consumed]


def terms_of(node: NodeContext, grant: Grant) -> GrantTerms | None:
    """The terms document published with ``grant`` (its ``GrantIssued`` event), provided it hashes
    to the grant's ``termsHash`` and agrees with the fields the contract enforces; else None."""
    node.indexer.sync_for("GrantRegistry", "GrantIssued")
    grant_id = "0x" + grant.grant_id.hex()
    with Session(node.engine) as session:
        issued = events_named(session, ["GrantIssued"], dataset_id="0x" + grant.dataset_id.hex())
    for event in issued:
        if event.args["grantId"] != grant_id:
            continue
        return published_terms(event.args["terms"], grant)
    return None


def published_terms(document: str, grant: Grant) -> GrantTerms | None:
    """The terms ``document`` a ``GrantIssued`` event carried, if it agrees with ``grant`` as
    the chain holds it now (its ``termsHash`` and the fields the contract enforces); else None."""
    try:
        terms = _parsed_terms(document)
    except ValidationError:
        return None
    return terms if terms.agrees_with(grant) else None


@lru_cache(maxsize=1024)
def _parsed_terms(document: str) -> GrantTerms:
    """A terms document parsed once (a frozen model: the same document is the same terms)."""
    return GrantTerms.parse(document)


@dataclass(frozen=True)
class GrantChoice:
    """The grant a task's foreign input runs under (zero: ask the owner to approve), or the term
    every usable grant's terms refuse."""

    grant_id: bytes
    refused: TermViolation | None = None


def choose_grant(
    node: NodeContext,
    spec: TaskSpec,
    item: SpecInput,
    *,
    fee: int,
    requester_rows: int | None = None,
) -> GrantChoice:
    """The newest grant of ``item``'s dataset to this organisation that is usable now and whose
    terms the task keeps (``requester_rows``, when known, held to a set-size cap against the
    provider's registered row count); with usable grants that all refuse it, the newest one's
    refusal.

    The candidates come from the index (:func:`issued_to`); whether each is usable (not revoked,
    expired or used up, nor a derived grant one of whose ancestors is: the registry's
    ``isUsable``) and its terms are read from the chain at every call."""
    dataset = bytes.fromhex(item.dataset[2:])
    kind = KINDS[spec.kind]
    sizes: tuple[int, int] | None = None
    refused: TermViolation | None = None
    for grant_id, document in reversed(issued_to(node, item.dataset)):
        if not node.ledger.grants.is_usable(grant_id, node.org_id, dataset, kind):
            continue
        grant = node.ledger.grants.get_grant(grant_id)
        terms = published_terms(document, grant)
        if requester_rows is not None and sizes is None:
            sizes = (requester_rows, node.ledger.data.get_dataset(dataset).row_count)
        problem = (
            TermViolation("termsHash", "the published terms do not match the chain")
            if terms is None
            else violation(spec, terms, item, fee=fee, sizes=sizes)
            or _price_violation(node, spec, terms, item, fee=fee, sizes=sizes)
        )
        if problem is None:
            return GrantChoice(grant_id)
        refused = refused or problem
    return GrantChoice(ZERO32, refused)


def _price_violation(
    node: NodeContext,
    spec: TaskSpec,
    terms: GrantTerms,
    item: SpecInput,
    *,
    fee: int,
    sizes: tuple[int, int] | None,
) -> TermViolation | None:
    """The terms' price, checked before submission where this node knows the provider's units:
    a protocol in which the requester announces its set, whose keys the provider answers."""
    if sizes is None or not enforces(spec.protocol, "max_requester_set"):
        return None
    charges = submission_charges(node.ledger.data, spec)
    return price_violation(charges, terms, org=item.org, fee=fee, units=sizes[0])


@dataclass(frozen=True)
class _Issued:
    """A dataset's grants to this organisation as read from the index (oldest first), the block
    below which the index was complete then, and until when they may be used without a read."""

    grants: list[tuple[bytes, str]]
    complete_below: int
    until: float


# per node database (tenants each have their own): (organisation, dataset id) -> its grants
_ISSUED: WeakKeyDictionary[Engine, dict[tuple[int, str], _Issued]] = WeakKeyDictionary()
_ISSUED_LOCK = threading.Lock()
_ISSUED_MAX = 4096
# a read is reused at most this long even when no grant was issued since: a bound on what an
# API process misses of a reorganisation another process of the node followed
ISSUED_CACHE_S = 5.0


def issued_to(node: NodeContext, dataset: str) -> list[tuple[bytes, str]]:
    """(grant id, terms document) of every grant of ``dataset`` (0x hex) issued to this
    organisation, oldest first, from the index made fresh for ``GrantIssued`` first.

    Read from the database once, then again only when the chain may hold a grant the read did
    not see: the fresh-event check (:meth:`EventIndexer.sync_for`) found no ``GrantIssued`` from
    a block at or below the one the index was complete to at the read (so nothing was issued
    since), otherwise the events are read again, and at least every :data:`ISSUED_CACHE_S`.
    Only candidates: a grant issued and then revoked, expired, used up or reorganised away is
    still listed, and refused by the chain read of :func:`choose_grant`."""
    dataset = dataset.lower()
    quiet_from = node.indexer.sync_for("GrantRegistry", "GrantIssued")
    key = (node.org_id, dataset)
    with _ISSUED_LOCK:
        cached = _ISSUED.get(node.engine, {}).get(key)
    if (
        cached is not None
        and cached.until > time.monotonic()
        and quiet_from is not None
        and quiet_from <= cached.complete_below
    ):
        return cached.grants
    complete_below = node.indexer.indexed_below()  # before the read: it sees all events below
    with node.engine.connect() as connection:
        rows = connection.execute(_grants_issued(), {"dataset": dataset}).all()
    found = [
        (bytes.fromhex(str(grant_id)[2:]), str(terms))
        for grant_id, grantee, terms in rows
        if int(grantee) == node.org_id  # a grant id binds its grantee: never usable by this org
    ]
    with _ISSUED_LOCK:
        issued = _ISSUED.setdefault(node.engine, {})
        if len(issued) >= _ISSUED_MAX:
            issued.clear()
        issued[key] = _Issued(found, complete_below, time.monotonic() + ISSUED_CACHE_S)
    return found


@lru_cache(maxsize=1)
def _grants_issued() -> Select[Any]:
    """The grant id, grantee and terms of the ``GrantIssued`` events of one dataset, in chain
    order, found through the indexer's references (built once)."""
    args = ChainEvent.args
    return (
        sa_select(args["grantId"], args["granteeOrg"], args["terms"])
        .join(
            ChainRef,
            and_(
                col(ChainRef.tx_hash) == col(ChainEvent.tx_hash),
                col(ChainRef.log_index) == col(ChainEvent.log_index),
            ),
        )
        .where(col(ChainRef.name) == "GrantIssued", col(ChainRef.kind) == "dataset")
        .where(col(ChainRef.value) == bindparam("dataset"))
        .order_by(col(ChainEvent.block_number), col(ChainEvent.log_index))
    )
