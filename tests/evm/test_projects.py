from __future__ import annotations

import secrets
from collections.abc import Callable

from eth_account import Account

from privledger.evm.accounts import dev_account
from privledger.evm.contracts import MemberStatus, OrgStatus, ProjectStatus, Role

from .conftest import Consortium, Member, reverts


def project_of(owner: Member, name: str = "fraud-2026") -> int:
    return owner.ledger.projects.create_project(name)


def join(consortium: Consortium, project_id: int, member: Member) -> None:
    consortium.bank_a.ledger.projects.invite(project_id, member.org_id)
    member.ledger.projects.accept_invitation(project_id)


def test_create_project_makes_the_owner_its_first_member(consortium: Consortium) -> None:
    bank = consortium.bank_a
    projects = bank.ledger.projects
    receipt_block = consortium.w3.eth.block_number
    project_id = project_of(bank)
    assert project_id == 1 and projects.project_count() == 1
    project = projects.get_project(project_id)
    assert (project.name, project.owner_org, project.status) == (
        "fraud-2026",
        bank.org_id,
        ProjectStatus.ACTIVE,
    )
    assert project.created_at == consortium.w3.eth.get_block(receipt_block + 1)["timestamp"]
    assert projects.members_of(project_id) == {bank.org_id: MemberStatus.MEMBER}
    assert projects.status_of(project_id, bank.org_id) is MemberStatus.MEMBER
    assert projects.status_of(99, bank.org_id) is MemberStatus.NONE
    assert projects.datasets_of(project_id) == ()
    with reverts("ProjectRegistryUnknownProject"):
        projects.get_project(99)


def test_operators_and_org_admins_create_projects_data_owners_do_not(
    consortium: Consortium,
) -> None:
    bank = consortium.bank_a
    operator, owner, admin = dev_account(8), dev_account(9), dev_account(10)
    bank.ledger.orgs.grant_roles(bank.org_id, operator.address, Role.OPERATOR)
    bank.ledger.orgs.grant_roles(bank.org_id, owner.address, Role.DATA_OWNER)
    bank.ledger.orgs.grant_roles(bank.org_id, admin.address, Role.ORG_ADMIN)
    assert bank.ledger.as_account(operator).projects.create_project("by-operator") == 1
    assert bank.ledger.as_account(admin).projects.create_project("by-admin") == 2
    with reverts("ProjectRegistryUnauthorized"):
        bank.ledger.as_account(owner).projects.create_project("by-data-owner")
    with reverts("ProjectRegistryUnauthorized"):  # the auditor belongs to no organisation
        consortium.admin.projects.create_project("by-consortium-admin")
    consortium.admin.orgs.set_org_status(bank.org_id, OrgStatus.SUSPENDED)
    with reverts("ProjectRegistryUnauthorized"):  # a suspended organisation is frozen
        bank.ledger.projects.create_project("while-suspended")
    for name in ("", "x" * 101):
        with reverts("ProjectRegistryInvalidName"):
            consortium.telecom.ledger.projects.create_project(name)
    assert consortium.telecom.ledger.projects.create_project("x" * 100) == 3


def test_invitation_is_accepted_declined_or_withdrawn(consortium: Consortium) -> None:
    bank, telecom, other = consortium.bank_a, consortium.telecom, consortium.bank_b
    project_id = project_of(bank)
    owner = bank.ledger.projects

    owner.invite(project_id, telecom.org_id)
    invited = owner.events(
        telecom.ledger.projects.accept_invitation(project_id), "ProjectInvitationAccepted"
    )
    assert invited[0]["args"]["org"] == telecom.org_id
    assert owner.status_of(project_id, telecom.org_id) is MemberStatus.MEMBER
    with reverts("ProjectRegistryAlreadyListed"):
        owner.invite(project_id, telecom.org_id)
    with reverts("ProjectRegistryNotInvited"):
        telecom.ledger.projects.accept_invitation(project_id)
    with reverts("ProjectRegistryUnauthorized"):  # only the owner organisation invites
        telecom.ledger.projects.invite(project_id, other.org_id)
    with reverts("ProjectRegistryInvalidOrg"):
        owner.invite(project_id, 99)
    consortium.admin.orgs.set_org_status(other.org_id, OrgStatus.SUSPENDED)
    with reverts("ProjectRegistryInvalidOrg"):
        owner.invite(project_id, other.org_id)
    consortium.admin.orgs.set_org_status(other.org_id, OrgStatus.ACTIVE)
    with reverts("ProjectRegistryUnknownProject"):
        owner.invite(99, other.org_id)

    owner.invite(project_id, other.org_id)
    assert owner.status_of(project_id, other.org_id) is MemberStatus.INVITED
    with reverts("ProjectRegistryNotInvited"):  # telecom is a member, not invited
        telecom.ledger.projects.decline_invitation(project_id)
    other.ledger.projects.decline_invitation(project_id)
    assert owner.status_of(project_id, other.org_id) is MemberStatus.NONE
    owner.invite(project_id, other.org_id)  # a declined organisation may be invited again
    receipt = owner.withdraw_invitation(project_id, other.org_id)
    assert owner.events(receipt, "ProjectInvitationWithdrawn")[0]["args"]["org"] == other.org_id
    with reverts("ProjectRegistryNotInvited"):
        owner.withdraw_invitation(project_id, other.org_id)
    with reverts("ProjectRegistryNotInvited"):
        other.ledger.projects.accept_invitation(project_id)
    assert owner.members_of(project_id) == {
        bank.org_id: MemberStatus.MEMBER,
        telecom.org_id: MemberStatus.MEMBER,
    }


def test_data_owners_of_members_add_and_remove_their_datasets(consortium: Consortium) -> None:
    bank, telecom, outsider = consortium.bank_a, consortium.telecom, consortium.bank_b
    project_id = project_of(bank)
    join(consortium, project_id, telecom)
    mine, theirs = consortium.dataset(bank), consortium.dataset(telecom)
    projects = bank.ledger.projects

    receipt = telecom.ledger.projects.add_dataset(project_id, theirs)
    added = projects.events(receipt, "ProjectDatasetAdded")[0]["args"]
    assert (added["datasetId"], added["ownerOrg"]) == (theirs, telecom.org_id)
    projects.add_dataset(project_id, mine)
    assert set(projects.datasets_of(project_id)) == {mine, theirs}
    assert projects.has_dataset(project_id, theirs)
    with reverts("ProjectRegistryDatasetAlreadyAdded"):
        projects.add_dataset(project_id, mine)
    with reverts("ProjectRegistryUnauthorized"):  # not the dataset's owner
        projects.add_dataset(project_id, consortium.dataset(telecom))
    with reverts("ProjectRegistryNotMember"):
        outsider.ledger.projects.add_dataset(project_id, consortium.dataset(outsider))
    with reverts("DataRegistryUnknownDataset"):
        projects.add_dataset(project_id, secrets.token_bytes(32))
    retired = consortium.dataset(bank)
    bank.ledger.data.retire(retired)
    with reverts("ProjectRegistryDatasetRetired"):
        projects.add_dataset(project_id, retired)
    operator = dev_account(8)
    bank.ledger.orgs.grant_roles(bank.org_id, operator.address, Role.OPERATOR)
    with reverts("ProjectRegistryUnauthorized"):  # an operator is no data owner
        bank.ledger.as_account(operator).projects.add_dataset(project_id, consortium.dataset(bank))

    with reverts("ProjectRegistryUnauthorized"):
        projects.remove_dataset(project_id, theirs)
    receipt = telecom.ledger.projects.remove_dataset(project_id, theirs)
    assert projects.events(receipt, "ProjectDatasetRemoved")[0]["args"]["datasetId"] == theirs
    assert not projects.has_dataset(project_id, theirs)
    assert projects.datasets_of(project_id) == (mine,)
    with reverts("ProjectRegistryDatasetNotAdded"):
        telecom.ledger.projects.remove_dataset(project_id, theirs)


def test_leaving_or_removal_takes_the_members_datasets_out(consortium: Consortium) -> None:
    bank, telecom, other = consortium.bank_a, consortium.telecom, consortium.bank_b
    project_id = project_of(bank)
    join(consortium, project_id, telecom)
    join(consortium, project_id, other)
    projects = bank.ledger.projects
    mine = consortium.dataset(bank)
    projects.add_dataset(project_id, mine)
    telecom_sets = [consortium.dataset(telecom) for _ in range(3)]
    for dataset in telecom_sets:
        telecom.ledger.projects.add_dataset(project_id, dataset)
    other_set = consortium.dataset(other)
    other.ledger.projects.add_dataset(project_id, other_set)

    receipt = telecom.ledger.projects.leave_project(project_id)
    removed = {e["args"]["datasetId"] for e in projects.events(receipt, "ProjectDatasetRemoved")}
    assert removed == set(telecom_sets)
    assert projects.events(receipt, "ProjectMemberLeft")[0]["args"]["org"] == telecom.org_id
    assert set(projects.datasets_of(project_id)) == {mine, other_set}
    assert projects.status_of(project_id, telecom.org_id) is MemberStatus.NONE
    with reverts("ProjectRegistryNotMember"):
        telecom.ledger.projects.leave_project(project_id)
    with reverts("ProjectRegistryOwnerOrg"):
        projects.leave_project(project_id)
    with reverts("ProjectRegistryOwnerOrg"):
        projects.remove_member(project_id, bank.org_id)
    with reverts("ProjectRegistryNotMember"):
        projects.remove_member(project_id, telecom.org_id)
    with reverts("ProjectRegistryUnauthorized"):  # only the owner organisation removes
        telecom.ledger.projects.remove_member(project_id, other.org_id)

    receipt = projects.remove_member(project_id, other.org_id)
    assert projects.events(receipt, "ProjectMemberRemoved")[0]["args"]["org"] == other.org_id
    assert projects.datasets_of(project_id) == (mine,)
    assert projects.members_of(project_id) == {bank.org_id: MemberStatus.MEMBER}


def test_a_closed_project_is_frozen_but_readable(consortium: Consortium) -> None:
    bank, telecom, other = consortium.bank_a, consortium.telecom, consortium.bank_b
    project_id = project_of(bank)
    join(consortium, project_id, telecom)
    projects = bank.ledger.projects
    dataset = consortium.dataset(telecom)
    telecom.ledger.projects.add_dataset(project_id, dataset)
    projects.invite(project_id, other.org_id)
    with reverts("ProjectRegistryUnauthorized"):
        telecom.ledger.projects.close_project(project_id)
    receipt = projects.close_project(project_id)
    assert projects.events(receipt, "ProjectClosed")[0]["args"]["projectId"] == project_id
    assert projects.get_project(project_id).status is ProjectStatus.CLOSED
    assert projects.datasets_of(project_id) == (dataset,)
    frozen: tuple[Callable[[], object], ...] = (
        lambda: projects.close_project(project_id),
        lambda: projects.invite(project_id, 4),
        lambda: projects.withdraw_invitation(project_id, other.org_id),
        lambda: other.ledger.projects.accept_invitation(project_id),
        lambda: other.ledger.projects.decline_invitation(project_id),
        lambda: telecom.ledger.projects.leave_project(project_id),
        lambda: projects.remove_member(project_id, telecom.org_id),
        lambda: projects.add_dataset(project_id, consortium.dataset(bank)),
        lambda: telecom.ledger.projects.remove_dataset(project_id, dataset),
    )
    for change in frozen:
        with reverts("ProjectRegistryClosed"):
            change()


def test_members_and_datasets_are_bounded(consortium: Consortium) -> None:
    bank = consortium.bank_a
    project_id = project_of(bank)
    projects = bank.ledger.projects
    max_members = int(projects.client.call(projects.contract.functions["MAX_MEMBERS"]()))
    max_datasets = int(projects.client.call(projects.contract.functions["MAX_DATASETS"]()))
    for index in range(max_members - 1):
        org_id = consortium.admin.orgs.register_org(
            f"org-{index}", Account.create().address, "", bytes(32)
        )
        projects.invite(project_id, org_id)
    with reverts("ProjectRegistryTooManyMembers"):
        projects.invite(project_id, consortium.telecom.org_id)
    for _ in range(max_datasets):
        projects.add_dataset(project_id, consortium.dataset(bank))
    with reverts("ProjectRegistryTooManyDatasets"):
        projects.add_dataset(project_id, consortium.dataset(bank))
    assert len(projects.datasets_of(project_id)) == max_datasets
