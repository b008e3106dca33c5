"""Issuing a grant, a grant's terms as the chain published them, and the choice of the grant a
task runs under."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from sqlmodel import Session

from privledger.evm.contracts import Grant
from privledger.evm.ledger import Ledger
from privledger.node.components import KINDS
from privledger.node.context import NodeContext
from privledger.node.spec import SpecInput, TaskSpec
from privledger.node.terms import GrantTerms, TermViolation, violation
from privledger.store.events import events_named

ZERO32 = bytes(32)


def grant_dataset(
    ledger: Ledger,
    *,
    dataset: str,
    grantee_org: int,
    terms: GrantTerms,
    expires_in_s: int,
    max_uses: int,
) -> bytes:
    """Grant ``grantee_org`` the use of ``dataset`` (0x hex) under ``terms``, signed by the
    ledger's account, for ``expires_in_s`` of chain time and ``max_uses`` tasks: the grant id.
    The terms document goes on chain whole; the registry enforces its chain terms itself."""
    now = ledger.client.latest_timestamp()
    return ledger.grants.grant(
        bytes.fromhex(dataset[2:]),
        grantee_org,
        terms.chain_terms(expiry=now + expires_in_s, max_uses=max_uses),
        terms.canonical_json(),
    )


def consumed_grants(node: NodeContext, task_id: int) -> list[Grant]:
    """The grants task ``task_id`` consumed when it was submitted (one per foreign input it
    covered; an input an owner approved instead has none)."""
    with Session(node.engine) as session:
        submitted = events_named(session, ["TaskSubmitted"], task_id=task_id)
        consumed = (
            events_named(session, ["GrantConsumed"], tx_hash=submitted[0].tx_hash)
            if submitted
            else []
        )
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
        try:
            terms = GrantTerms.parse(event.args["terms"])
        except ValidationError:
            return None
        return terms if terms.agrees_with(grant) else None
    return None


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
    refusal."""
    node.indexer.sync_for("GrantRegistry", "GrantIssued")
    with Session(node.engine) as session:
        issued = events_named(session, ["GrantIssued"], dataset_id=item.dataset.lower())
    dataset = bytes.fromhex(item.dataset[2:])
    kind = KINDS[spec.kind]
    sizes = None
    if requester_rows is not None:
        sizes = (requester_rows, node.ledger.data.get_dataset(dataset).row_count)
    refused: TermViolation | None = None
    for event in reversed(issued):
        if int(event.args["granteeOrg"]) != node.org_id:
            continue  # a grant id binds its grantee: never usable by this org
        grant_id = bytes.fromhex(event.args["grantId"][2:])
        if not node.ledger.grants.is_usable(grant_id, node.org_id, dataset, kind):
            continue
        terms = terms_of(node, node.ledger.grants.get_grant(grant_id))
        problem = (
            TermViolation("termsHash", "the published terms do not match the chain")
            if terms is None
            else violation(spec, terms, item, fee=fee, sizes=sizes)
        )
        if problem is None:
            return GrantChoice(grant_id)
        refused = refused or problem
    return GrantChoice(ZERO32, refused)
