from __future__ import annotations

import secrets
from dataclasses import replace

from web3.types import TxReceipt

from privledger.evm.contracts import ChainTerms, Kind
from privledger.evm.hashing import keccak256
from privledger.node.spec import PROTOCOL_IDS

from .conftest import PROTOCOL_OF, ZERO32, Consortium, Member, reverts

DOCUMENT = '{"purpose":"a test"}'  # the registry hashes the terms document, it does not read it
ECDH_AND_STATS = 1 << PROTOCOL_IDS["ecdh"] | 1 << PROTOCOL_IDS["joint-stats"]


def terms(kinds: Kind, expiry: int, uses: int, *, min_fee: int = 0) -> ChainTerms:
    return ChainTerms(kinds, ECDH_AND_STATS, 0, min_fee, expiry, uses)


def test_grant_records_terms(consortium: Consortium) -> None:
    bank, telecom = consortium.bank_a, consortium.telecom
    dataset = consortium.dataset(bank)
    expiry = consortium.now() + 3_600
    grant_id = bank.ledger.grants.grant(
        dataset, telecom.org_id, terms(Kind.PSI | Kind.STATS, expiry, 3, min_fee=77), DOCUMENT
    )
    grant = bank.ledger.grants.get_grant(grant_id)
    assert (grant.dataset_id, grant.grantee_org, grant.kinds) == (
        dataset,
        telecom.org_id,
        Kind.PSI | Kind.STATS,
    )
    assert (grant.expiry, grant.max_uses, grant.used, grant.revoked) == (expiry, 3, 0, False)
    assert grant.grantor == bank.address
    assert (grant.protocols, grant.dealer, grant.min_fee) == (ECDH_AND_STATS, 0, 77)
    assert grant.terms_hash == keccak256(DOCUMENT.encode())
    assert bank.ledger.grants.is_usable(grant_id, telecom.org_id, dataset, Kind.STATS)
    assert not bank.ledger.grants.is_usable(grant_id, telecom.org_id, dataset, Kind.FL)
    assert not bank.ledger.grants.is_usable(grant_id, consortium.bank_b.org_id, dataset, Kind.PSI)


def test_grant_refusals(consortium: Consortium) -> None:
    bank, telecom = consortium.bank_a, consortium.telecom
    dataset = consortium.dataset(bank)
    later = consortium.now() + 3_600
    with reverts("GrantRegistryUnauthorized"):  # not the owning org's data owner
        telecom.ledger.grants.grant(dataset, telecom.org_id, terms(Kind.PSI, later, 1), DOCUMENT)
    with reverts("GrantRegistryInvalidKinds"):
        bank.ledger.grants.grant(dataset, telecom.org_id, terms(Kind(0), later, 1), DOCUMENT)
    with reverts("GrantRegistryInvalidKinds"):
        bank.ledger.grants.grant(dataset, telecom.org_id, terms(Kind(16), later, 1), DOCUMENT)
    with reverts("GrantRegistryInvalidExpiry"):
        bank.ledger.grants.grant(
            dataset, telecom.org_id, terms(Kind.PSI, consortium.now() - 1, 1), DOCUMENT
        )
    with reverts("GrantRegistryInvalidMaxUses"):
        bank.ledger.grants.grant(dataset, telecom.org_id, terms(Kind.PSI, later, 0), DOCUMENT)
    with reverts("GrantRegistryInvalidGrantee"):
        bank.ledger.grants.grant(dataset, bank.org_id, terms(Kind.PSI, later, 1), DOCUMENT)
    with reverts("GrantRegistryInvalidGrantee"):
        bank.ledger.grants.grant(dataset, 999, terms(Kind.PSI, later, 1), DOCUMENT)
    with reverts("GrantRegistryInvalidProtocols"):  # bit 0 is no protocol
        bank.ledger.grants.grant(
            dataset, telecom.org_id, ChainTerms(Kind.PSI, 1, 0, 0, later, 1), DOCUMENT
        )
    with reverts("GrantRegistryInvalidProtocols"):
        bank.ledger.grants.grant(
            dataset, telecom.org_id, ChainTerms(Kind.PSI, 0, 0, 0, later, 1), DOCUMENT
        )
    with reverts("GrantRegistryInvalidExpiry"):  # beyond what 40 bits hold
        bank.ledger.grants.grant(dataset, telecom.org_id, terms(Kind.PSI, 2**40, 1), DOCUMENT)
    with reverts("GrantRegistryEmptyTerms"):
        bank.ledger.grants.grant(dataset, telecom.org_id, terms(Kind.PSI, later, 1), "")
    with reverts("DataRegistryUnknownDataset"):
        bank.ledger.grants.grant(
            secrets.token_bytes(32), telecom.org_id, terms(Kind.PSI, later, 1), DOCUMENT
        )
    bank.ledger.data.retire(dataset)
    with reverts("GrantRegistryDatasetRetired"):
        bank.ledger.grants.grant(dataset, telecom.org_id, terms(Kind.PSI, later, 1), DOCUMENT)


def test_revoke_only_by_owner_once(consortium: Consortium) -> None:
    bank, telecom = consortium.bank_a, consortium.telecom
    dataset = consortium.dataset(bank)
    grant_id = consortium.grant(dataset, bank, telecom)
    with reverts("GrantRegistryUnauthorized"):
        telecom.ledger.grants.revoke(grant_id)
    bank.ledger.grants.revoke(grant_id)
    assert bank.ledger.grants.get_grant(grant_id).revoked
    assert not bank.ledger.grants.is_usable(grant_id, telecom.org_id, dataset, Kind.PSI)
    with reverts("GrantRegistryRevoked"):
        bank.ledger.grants.revoke(grant_id)
    with reverts("GrantRegistryUnknownGrant"):
        bank.ledger.grants.revoke(secrets.token_bytes(32))


def _use(consortium: Consortium, dataset: bytes, grant_id: bytes) -> tuple[int, TxReceipt]:
    """telecom's task on bank-a's ``dataset`` under ``grant_id``: its id and receipt."""
    owner, user = consortium.bank_a, consortium.telecom
    return user.ledger.tasks.submit_task_receipt(
        spec_hash=secrets.token_bytes(32),
        kind=Kind.PSI,
        protocol=PROTOCOL_OF[Kind.PSI],
        inputs=[dataset],
        grant_ids=[grant_id],
        participants=[user.org_id, owner.org_id],
        deadline=consortium.now() + 86_400,
    )


def test_grant_is_exhausted_after_max_uses(consortium: Consortium) -> None:
    dataset = consortium.dataset(consortium.bank_a)
    grant_id = consortium.grant(dataset, consortium.bank_a, consortium.telecom, uses=2)
    _use(consortium, dataset, grant_id)
    _use(consortium, dataset, grant_id)
    assert consortium.admin.grants.get_grant(grant_id).used == 2
    with reverts("GrantRegistryExhausted"):
        _use(consortium, dataset, grant_id)


def test_expired_or_revoked_grant_never_authorises(consortium: Consortium) -> None:
    dataset = consortium.dataset(consortium.bank_a)
    expiring = consortium.grant(dataset, consortium.bank_a, consortium.telecom)
    revoked = consortium.grant(dataset, consortium.bank_a, consortium.telecom)
    consortium.bank_a.ledger.grants.revoke(revoked)
    with reverts("GrantRegistryRevoked"):
        _use(consortium, dataset, revoked)
    consortium.travel(86_401)
    with reverts("GrantRegistryExpired"):
        _use(consortium, dataset, expiring)
    assert consortium.admin.grants.get_grant(expiring).used == 0


def test_ledger_only_entry_points_refuse_other_callers(consortium: Consortium) -> None:
    """Only the TaskLedger consumes grants, opens requests and moves money in the Metering; only the
    Metering advances a dataset's usage counter."""
    bank_a, telecom = consortium.bank_a, consortium.telecom
    dataset = consortium.dataset(bank_a)
    grant = consortium.grant(dataset, bank_a, telecom)
    ledger = telecom.ledger
    grants, metering = ledger.grants.contract.functions, ledger.metering.contract.functions
    guarded = (
        (
            grants.consume(1, grant, telecom.org_id, dataset, int(Kind.PSI), 1, 0),
            "GrantRegistryUnauthorized",
        ),
        (
            grants.openRequest(1, dataset, telecom.org_id, int(Kind.PSI)),
            "GrantRegistryUnauthorized",
        ),
        (metering.recordUsage(1, [dataset]), "MeteringUnauthorized"),
        (metering.allocate(1, [bank_a.org_id], [10_000], 1), "MeteringUnauthorized"),
        (metering.refund(1, telecom.org_id, 1), "MeteringUnauthorized"),
        (ledger.data.contract.functions.recordUse(dataset), "DataRegistryUnauthorized"),
        (ledger.tasks.contract.functions.onInputRejected(1), "TaskLedgerOnlyGrantRegistry"),
    )
    for call, error in guarded:
        with reverts(error):
            ledger.client.transact(call)
    assert ledger.grants.get_grant(grant).used == 0
    assert ledger.data.usage_of(dataset) == ledger.metering.usage_of(dataset) == 0


def _derived_terms(kinds: Kind, expiry: int, uses: int, parent: bytes) -> ChainTerms:
    return replace(terms(kinds, expiry, uses), parent_grant=parent)


def test_a_derived_grant_is_checked_against_its_parent(consortium: Consortium) -> None:
    """A grant derived under another is the same owner's, on a dataset derived from the parent's,
    to the parent's grantee, allowing no more than the parent, for no longer, while it lives."""
    bank, other, telecom = consortium.bank_a, consortium.bank_b, consortium.telecom
    data = consortium.dataset(bank)
    expiry = consortium.now() + 3_600
    parent = bank.ledger.grants.grant(data, telecom.org_id, terms(Kind.PSI, expiry, 3), DOCUMENT)
    derived = consortium.dataset(bank, parents=(data,))

    def derive(
        dataset: bytes,
        *,
        grantee: int = telecom.org_id,
        kinds: Kind = Kind.PSI,
        until: int = expiry,
        under: bytes = parent,
        signer: Member = bank,
    ) -> bytes:
        chain_terms = _derived_terms(kinds, until, 3, under)
        return signer.ledger.grants.grant(dataset, grantee, chain_terms, DOCUMENT)

    theirs = consortium.dataset(other, parents=(data,))  # bank-b's, derived from bank-a's
    for refused in (
        lambda: derive(derived, under=secrets.token_bytes(32)),  # no such grant
        lambda: derive(derived, grantee=other.org_id),  # another grantee
        lambda: derive(consortium.dataset(bank)),  # not derived from the parent's dataset
        lambda: derive(derived, kinds=Kind.PSI | Kind.STATS),  # more than the parent allows
        lambda: derive(theirs, signer=other),  # under another owner's grant
    ):
        with reverts("GrantRegistryInvalidParent"):
            refused()
    with reverts("GrantRegistryInvalidExpiry"):
        derive(derived, until=expiry + 1)
    grant_id = derive(derived)
    assert bank.ledger.grants.get_grant(grant_id).parent_grant == parent
    assert bank.ledger.grants.get_grant(parent).parent_grant == ZERO32
    bank.ledger.grants.revoke(parent)
    with reverts("GrantRegistryInvalidParent"):  # under a revoked grant
        derive(derived)


def test_a_derived_grant_counts_against_its_parent_s_uses(consortium: Consortium) -> None:
    """Each use of a derived grant is one of its parent's too, logged as such with the task's id;
    the derived grant ends when its parent is used up (or revoked, or expires), whatever uses it
    has left of its own."""
    bank, telecom = consortium.bank_a, consortium.telecom
    data = consortium.dataset(bank)
    expiry = consortium.now() + 3_600
    grants = bank.ledger.grants
    parent = grants.grant(data, telecom.org_id, terms(Kind.PSI, expiry, 2), DOCUMENT)
    derived = consortium.dataset(bank, parents=(data,))
    child = grants.grant(
        derived, telecom.org_id, _derived_terms(Kind.PSI, expiry, 2, parent), DOCUMENT
    )

    task_id, receipt = _use(consortium, derived, child)
    (consumed,) = grants.events(receipt, "GrantConsumed")
    assert dict(consumed["args"]) == {"taskId": task_id, "grantId": child, "used": 1}
    (counted,) = grants.events(receipt, "DerivedUseCounted")
    assert dict(counted["args"]) == {
        "taskId": task_id,
        "grantId": parent,
        "derivedGrantId": child,
        "used": 1,
    }
    _use(consortium, data, parent)  # the parent's second and last use
    assert (grants.get_grant(parent).used, grants.get_grant(child).used) == (2, 1)
    assert not grants.is_usable(child, telecom.org_id, derived, Kind.PSI)
    with reverts("GrantRegistryAncestorLapsed"):
        _use(consortium, derived, child)
    assert grants.get_grant(child).used == 1
