"""Hypothesis state machine over real grants on anvil: uses never exceed the maximum, expired or
revoked grants never authorise, and only the owning org's data owners can grant (neither other
organisations nor members of the owning organisation without the data-owner role)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from web3 import Web3

from privledger.evm.accounts import dev_account
from privledger.evm.artifacts import Artifact
from privledger.evm.contracts import ChainTerms, Kind, Role
from privledger.evm.deploy import Deployment
from privledger.evm.errors import ChainRevert
from privledger.evm.ledger import Ledger

from .conftest import PROTOCOL_OF, Consortium, Member, onboard

KINDS = st.sampled_from([Kind.PSI, Kind.PIR, Kind.STATS, Kind.FL])
# Members of the owning organisation that hold every role but the data owner's, one role each
# (development account index, roles); the auditor role is granted by the consortium admin.
EVERY_PROTOCOL = sum(1 << protocol for protocol in PROTOCOL_OF.values())


def every_protocol(kinds: Kind, expiry: int, uses: int) -> ChainTerms:
    """Terms that allow the test task protocol of every kind: the kinds decide."""
    return ChainTerms(kinds, EVERY_PROTOCOL, 0, 0, expiry, uses)


INSIDERS = {"operator": (4, Role.OPERATOR), "auditor": (5, Role.AUDITOR)}
INSIDERS["org-admin"] = (6, Role.ORG_ADMIN | Role.OPERATOR | Role.AUDITOR)


@dataclass
class GrantModel:
    grant_id: bytes
    kinds: Kind
    expiry: int
    max_uses: int
    used: int = 0
    revoked: bool = False

    def authorises(self, kind: Kind, now: int) -> bool:
        return (
            not self.revoked
            and now < self.expiry
            and self.used < self.max_uses
            and bool(kind & self.kinds)
        )


def make_machine(w3: Web3, artifacts: dict[str, Artifact], deployment: Deployment) -> type:
    class GrantMachine(RuleBasedStateMachine):
        grants = Bundle("grants")

        @initialize()
        def setup(self) -> None:
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
            admin = Ledger.connect_dev(w3, artifacts, deployment)
            self.c = Consortium(
                admin,
                onboard(admin, "owner", 1),
                onboard(admin, "other", 2),
                onboard(admin, "user", 3),
            )
            self.owner: Member = self.c.bank_a
            self.user: Member = self.c.telecom
            self.dataset = self.c.dataset(self.owner)
            self.model: dict[bytes, GrantModel] = {}
            self.insiders: dict[str, Ledger] = {}
            for name, (index, roles) in INSIDERS.items():
                account = dev_account(index)
                admin.orgs.grant_roles(self.owner.org_id, account.address, roles)
                insider = admin.as_account(account)
                assert insider.orgs.org_of(account.address) == self.owner.org_id
                assert not insider.orgs.roles_of(account.address) & Role.DATA_OWNER
                self.insiders[name] = insider

        def teardown(self) -> None:
            if hasattr(self, "snapshot"):
                w3.provider.make_request("evm_revert", [self.snapshot])  # type: ignore[arg-type]

        @rule(
            target=grants,
            kinds=st.sets(KINDS, min_size=1),
            ttl=st.integers(60, 2_000),
            uses=st.integers(1, 3),
        )
        def issue(self, kinds: set[Kind], ttl: int, uses: int) -> bytes:
            mask = Kind(0)
            for kind in kinds:
                mask |= kind
            expiry = self.c.now() + ttl
            grant_id = self.owner.ledger.grants.grant(
                self.dataset, self.user.org_id, every_protocol(mask, expiry, uses), "{}"
            )
            self.model[grant_id] = GrantModel(grant_id, mask, expiry, uses)
            return grant_id

        @rule(granter=st.sampled_from(["other", "user", *INSIDERS]), kind=KINDS)
        def non_data_owner_cannot_grant(self, granter: str, kind: Kind) -> None:
            outsiders = {"other": self.c.bank_b.ledger, "user": self.user.ledger}
            ledger = outsiders.get(granter) or self.insiders[granter]
            with pytest.raises(ChainRevert) as caught:
                ledger.grants.grant(
                    self.dataset,
                    self.user.org_id,
                    every_protocol(kind, self.c.now() + 100, 1),
                    "{}",
                )
            assert caught.value.error == "GrantRegistryUnauthorized"

        @rule(grant=grants, kind=KINDS)
        def use(self, grant: bytes, kind: Kind) -> None:
            model = self.model[grant]
            # the task is mined in the next block, one second or more after `now`
            expected = model.authorises(kind, self.c.now() + 1)
            try:
                self.user.ledger.tasks.submit_task(
                    spec_hash=secrets.token_bytes(32),
                    kind=kind,
                    protocol=PROTOCOL_OF[kind],
                    inputs=[self.dataset],
                    grant_ids=[grant],
                    participants=[self.user.org_id, self.owner.org_id],
                    deadline=self.c.now() + 86_400,
                )
            except ChainRevert as revert:
                assert not expected or model.expiry - self.c.now() <= 2, str(revert)
                assert revert.error.startswith("Grant"), str(revert)
                return
            assert expected or model.expiry - self.c.now() <= 2
            model.used += 1

        @rule(grant=grants)
        def revoke(self, grant: bytes) -> None:
            model = self.model[grant]
            if model.revoked:
                with pytest.raises(ChainRevert):
                    self.owner.ledger.grants.revoke(grant)
                return
            self.owner.ledger.grants.revoke(grant)
            model.revoked = True

        @rule(seconds=st.integers(1, 1_500))
        def wait(self, seconds: int) -> None:
            self.c.travel(seconds)

        @invariant()
        def chain_matches_model(self) -> None:
            if not hasattr(self, "model"):
                return
            for grant_id, model in self.model.items():
                grant = self.owner.ledger.grants.get_grant(grant_id)
                assert grant.used == model.used <= grant.max_uses
                assert grant.revoked == model.revoked

    return GrantMachine


@pytest.mark.slow
def test_grant_state_machine(
    w3: Web3, artifacts: dict[str, Artifact], deployment: Deployment
) -> None:
    machine = make_machine(w3, artifacts, deployment)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=12,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
