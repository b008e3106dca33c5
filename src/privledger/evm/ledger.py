"""The whole ledger as one object: every contract facade bound to one account."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from web3 import Web3

from privledger.evm.accounts import dev_account
from privledger.evm.artifacts import Artifact
from privledger.evm.client import ChainClient
from privledger.evm.contracts import (
    BatchAnchor,
    DataRegistry,
    GrantRegistry,
    Metering,
    OrgRegistry,
    ProjectRegistry,
    TaskLedger,
)
from privledger.evm.deploy import Deployment
from privledger.evm.errors import ErrorDecoder


@dataclass(frozen=True)
class Ledger:
    client: ChainClient
    deployment: Deployment
    artifacts: dict[str, Artifact]
    orgs: OrgRegistry
    data: DataRegistry
    grants: GrantRegistry
    tasks: TaskLedger
    metering: Metering
    anchors: BatchAnchor
    projects: ProjectRegistry
    # the ledgers of other accounts on this connection, built once each (see as_account)
    _accounts: dict[str, Ledger] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_client(
        cls, client: ChainClient, artifacts: dict[str, Artifact], deployment: Deployment
    ) -> Ledger:
        def bind(name: str) -> tuple[ChainClient, object]:
            return client, client.w3.eth.contract(
                address=deployment.address(name), abi=artifacts[name].abi
            )

        return cls(
            client=client,
            deployment=deployment,
            artifacts=artifacts,
            orgs=OrgRegistry(*bind("OrgRegistry")),  # type: ignore[arg-type]
            data=DataRegistry(*bind("DataRegistry")),  # type: ignore[arg-type]
            grants=GrantRegistry(*bind("GrantRegistry")),  # type: ignore[arg-type]
            tasks=TaskLedger(*bind("TaskLedger")),  # type: ignore[arg-type]
            metering=Metering(*bind("Metering")),  # type: ignore[arg-type]
            anchors=BatchAnchor(*bind("BatchAnchor")),  # type: ignore[arg-type]
            projects=ProjectRegistry(*bind("ProjectRegistry")),  # type: ignore[arg-type]
        )

    @classmethod
    def connect(
        cls,
        w3: Web3,
        artifacts: dict[str, Artifact],
        deployment: Deployment,
        account: LocalAccount,
        *,
        receipt_timeout_s: float = 30.0,
    ) -> Ledger:
        errors = ErrorDecoder(artifact.abi for artifact in artifacts.values())
        client = ChainClient(w3, account, errors, receipt_timeout_s=receipt_timeout_s)
        return cls.from_client(client, artifacts, deployment)

    @classmethod
    def connect_dev(
        cls, w3: Web3, artifacts: dict[str, Artifact], deployment: Deployment, index: int = 0
    ) -> Ledger:
        """The ``index``-th development account's ledger (local chain only)."""
        return cls.connect(w3, artifacts, deployment, dev_account(index, w3.eth.chain_id))

    def as_account(self, account: LocalAccount) -> Ledger:
        """The ledger signed by ``account``; built once per account, and its client shares one
        nonce counter with every other user of that account on this connection."""
        client = self.client.with_account(account)
        cached = self._accounts.get(account.address)
        if cached is not None and cached.client is client:
            return cached
        ledger = Ledger.from_client(client, self.artifacts, self.deployment)
        object.__setattr__(ledger, "_accounts", self._accounts)  # one cache for the family
        self._accounts[account.address] = ledger
        return ledger
