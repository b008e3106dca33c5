"""Who is who on the ledger, from the indexed OrgRegistry events: organisations with their node
endpoint and status, and every account with its organisation and roles."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from privledger.evm.contracts import OrgStatus, Role
from privledger.store.models import ChainEvent


@dataclass
class OrgEntry:
    org_id: int
    name: str
    admin: str
    endpoint: str = ""
    status: str = "active"
    block_number: int = 0
    tx_hash: str = ""


@dataclass
class AccountEntry:
    address: str
    org_id: int
    roles: int = 0


@dataclass
class Directory:
    orgs: dict[int, OrgEntry] = field(default_factory=dict)
    accounts: dict[str, AccountEntry] = field(default_factory=dict)  # by checksum address

    @classmethod
    def load(cls, session: Session) -> Directory:
        """Replays the OrgRegistry events in chain order."""
        directory = cls()
        events = session.exec(
            select(ChainEvent)
            .where(ChainEvent.contract == "OrgRegistry")
            .order_by(col(ChainEvent.block_number), col(ChainEvent.log_index))
        )
        for event in events:
            directory._apply(event)
        return directory

    def _apply(self, event: ChainEvent) -> None:
        args = event.args
        if event.event == "OrgRegistered":
            org_id = int(args["orgId"])
            self.orgs[org_id] = OrgEntry(
                org_id, str(args["name"]), str(args["admin"]), "", "active",
                event.block_number, event.tx_hash,
            )  # fmt: skip
        elif event.event == "NodeUpdated" and int(args["orgId"]) in self.orgs:
            self.orgs[int(args["orgId"])].endpoint = str(args["endpoint"])
        elif event.event == "OrgStatusChanged" and int(args["orgId"]) in self.orgs:
            self.orgs[int(args["orgId"])].status = OrgStatus(int(args["status"])).name.lower()
        elif event.event in ("RolesGranted", "RolesRevoked"):
            address, org_id = str(args["account"]), int(args["orgId"])
            entry = self.accounts.setdefault(address, AccountEntry(address, org_id))
            entry.org_id = org_id
            if event.event == "RolesGranted":
                entry.roles |= int(args["roles"])
            else:
                entry.roles &= ~int(args["roles"])

    def org_name(self, org_id: int) -> str:
        org = self.orgs.get(org_id)
        return org.name if org is not None else f"org {org_id}"

    def members(self, org_id: int) -> list[AccountEntry]:
        return [a for a in self.accounts.values() if a.org_id == org_id and a.roles]

    def org_of(self, address: str | None) -> str:
        """The name of the organisation ``address`` has roles in, or ""."""
        entry = self.accounts.get(address or "")
        return self.org_name(entry.org_id) if entry is not None and entry.roles else ""

    def label(self, address: str | None) -> str:
        """A short description of an address: its org and roles, or a ledger contract."""
        if not address:
            return ""
        entry = self.accounts.get(address)
        if entry is None or not entry.roles:
            return ""
        roles = ", ".join(
            r.name.lower().replace("_", " ") for r in Role if r & entry.roles and r.name
        )
        return f"{self.org_name(entry.org_id)} · {roles}"
