from __future__ import annotations

from privledger.evm.accounts import dev_account
from privledger.evm.contracts import OrgStatus, Role
from privledger.evm.ledger import Ledger

from .conftest import Consortium, reverts


def test_register_org_records_identity_and_admin(ledger: Ledger) -> None:
    admin = dev_account(5).address
    org_id = ledger.orgs.register_org("insurer", admin, "https://insurer:8000", b"\x07" * 32)
    org = ledger.orgs.get_org(org_id)
    assert (org.name, org.admin, org.endpoint, org.node_key) == (
        "insurer",
        admin,
        "https://insurer:8000",
        b"\x07" * 32,
    )
    assert org.status is OrgStatus.ACTIVE
    assert ledger.orgs.org_of(admin) == org_id
    assert ledger.orgs.roles_of(admin) == Role.ORG_ADMIN
    assert ledger.orgs.has_org_role(org_id, admin, Role.ORG_ADMIN)
    assert ledger.orgs.org_count() == org_id


def test_only_consortium_admin_registers_and_names_are_unique(consortium: Consortium) -> None:
    outsider = consortium.bank_a.ledger
    with reverts("AccessControlUnauthorizedAccount"):
        outsider.orgs.register_org("rogue", dev_account(6).address, "", bytes(32))
    with reverts("OrgRegistryNameTaken"):
        consortium.admin.orgs.register_org("bank-a", dev_account(6).address, "", bytes(32))
    with reverts("OrgRegistryInvalidAdmin"):
        consortium.admin.orgs.register_org("x", "0x" + "00" * 20, "", bytes(32))
    with reverts("OrgRegistryAlreadyMember"):
        consortium.admin.orgs.register_org("y", consortium.bank_b.address, "", bytes(32))


def test_roles_granted_and_revoked_by_org_admin(consortium: Consortium) -> None:
    bank = consortium.bank_a
    analyst = dev_account(7).address
    bank.ledger.orgs.grant_roles(bank.org_id, analyst, Role.OPERATOR)
    assert bank.ledger.orgs.has_org_role(bank.org_id, analyst, Role.OPERATOR)
    assert not bank.ledger.orgs.has_org_role(bank.org_id, analyst, Role.DATA_OWNER)
    bank.ledger.orgs.revoke_roles(bank.org_id, analyst, Role.OPERATOR)
    assert bank.ledger.orgs.org_of(analyst) == 0

    with reverts("OrgRegistryUnauthorized"):  # another org's admin
        consortium.bank_b.ledger.orgs.grant_roles(bank.org_id, analyst, Role.OPERATOR)
    with reverts("OrgRegistryUnauthorized"):  # auditors are appointed by the consortium admin
        bank.ledger.orgs.grant_roles(bank.org_id, analyst, Role.AUDITOR)
    with reverts("OrgRegistryInvalidRoles"):
        bank.ledger.orgs.grant_roles(bank.org_id, analyst, Role(0))
    with reverts("OrgRegistryAlreadyMember"):
        bank.ledger.orgs.grant_roles(bank.org_id, consortium.telecom.address, Role.OPERATOR)
    with reverts("OrgRegistryUnknownOrg"):
        consortium.admin.orgs.grant_roles(999, analyst, Role.AUDITOR)

    consortium.admin.orgs.grant_roles(bank.org_id, analyst, Role.AUDITOR)
    assert consortium.admin.orgs.roles_of(analyst) == Role.AUDITOR


def test_suspended_org_loses_its_roles(consortium: Consortium) -> None:
    telecom = consortium.telecom
    consortium.admin.orgs.set_org_status(telecom.org_id, OrgStatus.SUSPENDED)
    assert not consortium.admin.orgs.is_active(telecom.org_id)
    assert not consortium.admin.orgs.has_org_role(telecom.org_id, telecom.address, Role.OPERATOR)
    with reverts("OrgRegistryInvalidStatus"):
        consortium.admin.orgs.set_org_status(telecom.org_id, OrgStatus.NONE)
    with reverts("AccessControlUnauthorizedAccount"):
        telecom.ledger.orgs.set_org_status(telecom.org_id, OrgStatus.ACTIVE)
    consortium.admin.orgs.set_org_status(telecom.org_id, OrgStatus.ACTIVE)
    assert consortium.admin.orgs.has_org_role(telecom.org_id, telecom.address, Role.OPERATOR)


def test_node_endpoint_and_key_updated_by_org_admin(consortium: Consortium) -> None:
    bank = consortium.bank_b
    bank.ledger.orgs.update_node(bank.org_id, "https://bank-b:9000", b"\x09" * 32)
    org = bank.ledger.orgs.get_org(bank.org_id)
    assert (org.endpoint, org.node_key) == ("https://bank-b:9000", b"\x09" * 32)
    with reverts("OrgRegistryUnauthorized"):
        consortium.bank_a.ledger.orgs.update_node(bank.org_id, "https://evil", bytes(32))


def test_name_account_and_membership_checks(consortium: Consortium) -> None:
    bank = consortium.bank_a
    with reverts("OrgRegistryInvalidName"):
        consortium.admin.orgs.register_org("", dev_account(9).address, "", bytes(32))
    with reverts("OrgRegistryInvalidAccount"):
        bank.ledger.orgs.grant_roles(bank.org_id, "0x" + "00" * 20, Role.OPERATOR)
    with reverts("OrgRegistryNotMember"):
        bank.ledger.orgs.revoke_roles(bank.org_id, dev_account(9).address, Role.OPERATOR)


def test_consortium_admin_renounce_needs_confirmation(ledger: Ledger) -> None:
    admin_role = bytes(32)
    renounce = ledger.orgs.contract.functions.renounceRole(admin_role, dev_account(9).address)
    with reverts("AccessControlBadConfirmation"):
        ledger.client.transact(renounce)
