from __future__ import annotations

import secrets

from privledger.evm.contracts import Kind

from .conftest import Consortium, reverts


def test_grant_records_terms(consortium: Consortium) -> None:
    bank, telecom = consortium.bank_a, consortium.telecom
    dataset = consortium.dataset(bank)
    expiry = consortium.now() + 3_600
    grant_id = bank.ledger.grants.grant(dataset, telecom.org_id, Kind.PSI | Kind.STATS, expiry, 3)
    grant = bank.ledger.grants.get_grant(grant_id)
    assert (grant.dataset_id, grant.grantee_org, grant.kinds) == (
        dataset,
        telecom.org_id,
        Kind.PSI | Kind.STATS,
    )
    assert (grant.expiry, grant.max_uses, grant.used, grant.revoked) == (expiry, 3, 0, False)
    assert grant.grantor == bank.address
    assert bank.ledger.grants.is_usable(grant_id, telecom.org_id, dataset, Kind.STATS)
    assert not bank.ledger.grants.is_usable(grant_id, telecom.org_id, dataset, Kind.FL)
    assert not bank.ledger.grants.is_usable(grant_id, consortium.bank_b.org_id, dataset, Kind.PSI)


def test_grant_refusals(consortium: Consortium) -> None:
    bank, telecom = consortium.bank_a, consortium.telecom
    dataset = consortium.dataset(bank)
    later = consortium.now() + 3_600
    with reverts("GrantRegistryUnauthorized"):  # not the owning org's data owner
        telecom.ledger.grants.grant(dataset, telecom.org_id, Kind.PSI, later, 1)
    with reverts("GrantRegistryInvalidKinds"):
        bank.ledger.grants.grant(dataset, telecom.org_id, Kind(0), later, 1)
    with reverts("GrantRegistryInvalidKinds"):
        bank.ledger.grants.grant(dataset, telecom.org_id, Kind(16), later, 1)
    with reverts("GrantRegistryInvalidExpiry"):
        bank.ledger.grants.grant(dataset, telecom.org_id, Kind.PSI, consortium.now() - 1, 1)
    with reverts("GrantRegistryInvalidMaxUses"):
        bank.ledger.grants.grant(dataset, telecom.org_id, Kind.PSI, later, 0)
    with reverts("GrantRegistryInvalidGrantee"):
        bank.ledger.grants.grant(dataset, bank.org_id, Kind.PSI, later, 1)
    with reverts("GrantRegistryInvalidGrantee"):
        bank.ledger.grants.grant(dataset, 999, Kind.PSI, later, 1)
    with reverts("DataRegistryUnknownDataset"):
        bank.ledger.grants.grant(secrets.token_bytes(32), telecom.org_id, Kind.PSI, later, 1)
    bank.ledger.data.retire(dataset)
    with reverts("GrantRegistryDatasetRetired"):
        bank.ledger.grants.grant(dataset, telecom.org_id, Kind.PSI, later, 1)


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


def test_only_the_task_ledger_consumes(consortium: Consortium) -> None:
    bank, telecom = consortium.bank_a, consortium.telecom
    dataset = consortium.dataset(bank)
    grant_id = consortium.grant(dataset, bank, telecom)
    consume = telecom.ledger.grants.contract.functions.consume(
        grant_id, telecom.org_id, dataset, int(Kind.PSI)
    )
    with reverts("GrantRegistryUnauthorized"):
        telecom.ledger.client.transact(consume)
