from __future__ import annotations

import secrets

from privledger.evm.accounts import dev_account
from privledger.evm.contracts import Role

from .conftest import Consortium, reverts


def test_register_dataset_is_content_addressed(consortium: Consortium) -> None:
    bank = consortium.bank_a
    schema, commitment = secrets.token_bytes(32), secrets.token_bytes(32)
    dataset_id = bank.ledger.data.register(
        schema_hash=schema, commitment=commitment, row_count=1234, level=3, unit_price=7
    )
    record = bank.ledger.data.get_dataset(dataset_id)
    assert (record.owner_org, record.schema_hash, record.commitment) == (
        bank.org_id,
        schema,
        commitment,
    )
    assert (record.row_count, record.level, record.unit_price, record.retired) == (
        1234,
        3,
        7,
        False,
    )
    assert bank.ledger.data.exists(dataset_id)
    assert bank.ledger.data.dataset_count() == 1
    with reverts("DataRegistryAlreadyExists"):
        bank.ledger.data.register(
            schema_hash=schema, commitment=commitment, row_count=1, level=1, unit_price=0
        )


def test_derived_dataset_names_its_parents(consortium: Consortium) -> None:
    bank = consortium.bank_a
    parent = consortium.dataset(bank)
    child = consortium.dataset(bank, parents=(parent,), upstream_bps=2_500)
    record = bank.ledger.data.get_dataset(child)
    assert record.parents == (parent,)
    assert record.upstream_bps == 2_500
    with reverts("DataRegistryUnknownDataset"):
        consortium.dataset(bank, parents=(secrets.token_bytes(32),), upstream_bps=1_000)
    with reverts("DataRegistryInvalidUpstream"):  # no parents to pass a share to
        consortium.dataset(bank, upstream_bps=100)
    with reverts("DataRegistryInvalidUpstream"):
        consortium.dataset(bank, parents=(parent,), upstream_bps=10_001)
    with reverts("DataRegistryInvalidParents"):
        consortium.dataset(bank, parents=(parent, parent), upstream_bps=100)


def test_only_data_owners_register_and_levels_are_checked(consortium: Consortium) -> None:
    operator_only = dev_account(8)
    bank = consortium.bank_a
    bank.ledger.orgs.grant_roles(bank.org_id, operator_only.address, Role.OPERATOR)
    with reverts("DataRegistryUnauthorized"):
        consortium.dataset(bank, signer=bank.ledger.as_account(operator_only))
    for level in (0, 5):
        with reverts("DataRegistryInvalidLevel"):
            consortium.dataset(bank, level=level)


def test_retire_and_price_change_by_owner_only(consortium: Consortium) -> None:
    dataset = consortium.dataset(consortium.bank_a)
    with reverts("DataRegistryUnauthorized"):
        consortium.bank_b.ledger.data.retire(dataset)
    with reverts("DataRegistryUnauthorized"):
        consortium.bank_b.ledger.data.set_unit_price(dataset, 1)
    consortium.bank_a.ledger.data.set_unit_price(dataset, 99)
    assert consortium.admin.data.get_dataset(dataset).unit_price == 99
    consortium.bank_a.ledger.data.retire(dataset)
    assert consortium.admin.data.get_dataset(dataset).retired
    with reverts("DataRegistryRetired"):
        consortium.bank_a.ledger.data.retire(dataset)
    with reverts("DataRegistryUnknownDataset"):
        consortium.bank_a.ledger.data.retire(secrets.token_bytes(32))
