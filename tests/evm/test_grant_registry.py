from __future__ import annotations

import secrets

from privledger.evm.contracts import ChainTerms, Kind
from privledger.evm.hashing import keccak256
from privledger.node.spec import PROTOCOL_IDS

from .conftest import PROTOCOL_OF, Consortium, reverts

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


def _use(consortium: Consortium, dataset: bytes, grant_id: bytes) -> int:
    owner, user = consortium.bank_a, consortium.telecom
    return user.ledger.tasks.submit_task(
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
            grants.consume(grant, telecom.org_id, dataset, int(Kind.PSI), 1, 0),
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
