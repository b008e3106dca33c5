"""A small onboarded consortium on the snapshotted ledger: three organisations whose admin accounts
are also data owners and operators, plus an auditor."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from web3 import Web3

from privledger.api.app import create_app
from privledger.api.deps import issue_token
from privledger.config import NodeSettings
from privledger.evm.accounts import dev_account
from privledger.evm.contracts import Kind, Role
from privledger.evm.errors import ChainRevert
from privledger.evm.indexer import EventIndexer
from privledger.evm.ledger import Ledger
from privledger.node.context import NodeContext
from privledger.node.keystore import Keystore
from privledger.node.policy import Policies
from privledger.node.spec import PROTOCOL_IDS
from privledger.node.terms import default_terms
from privledger.node.transport import Mailbox
from privledger.store.db import make_engine, sqlite_url

ZERO32 = bytes(32)
# the protocol a test task of each kind runs (ids as in privledger.node.spec.PROTOCOL_IDS)
PROTOCOL_OF = {Kind.PSI: PROTOCOL_IDS["ecdh"], Kind.PIR: PROTOCOL_IDS["simplepir"]}
PROTOCOL_OF |= {Kind.STATS: PROTOCOL_IDS["joint-stats"], Kind.FL: PROTOCOL_IDS["vertical-lr"]}


@dataclass(frozen=True)
class Member:
    org_id: int
    ledger: Ledger

    @property
    def address(self) -> str:
        return self.ledger.client.address


@dataclass(frozen=True)
class Consortium:
    admin: Ledger
    bank_a: Member
    bank_b: Member
    telecom: Member

    @property
    def w3(self) -> Web3:
        return self.admin.client.w3

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def dataset(
        self,
        owner: Member,
        *,
        price: int = 1_000,
        rows: int = 100,
        level: int = 2,
        parents: tuple[bytes, ...] = (),
        upstream_bps: int = 0,
        signer: Ledger | None = None,
    ) -> bytes:
        """Register a fresh dataset of ``owner`` (sent by ``signer`` when given)."""
        return (signer or owner.ledger).data.register(
            schema_hash=secrets.token_bytes(32),
            commitment=secrets.token_bytes(32),
            row_count=rows,
            level=level,
            unit_price=price,
            parents=parents,
            upstream_bps=upstream_bps,
        )

    def grant(
        self,
        dataset: bytes,
        owner: Member,
        grantee: Member,
        *,
        uses: int = 5,
        kinds: Kind = Kind.PSI,
        min_fee: int = 0,
        dealer: int | None = None,
    ) -> bytes:
        """A grant under the default terms of ``kinds`` (every protocol of theirs but union3),
        with a fee floor and a dealer if given."""
        names = [kind.name.lower() for kind in Kind if kind & kinds and kind.name]
        terms = default_terms(names, ["phone"]).model_copy(
            update={"min_fee_wei": min_fee, "dealer": dealer}
        )
        return owner.ledger.grants.grant(
            dataset,
            grantee.org_id,
            terms.chain_terms(expiry=self.now() + 86_400, max_uses=uses),
            terms.canonical_json(),
        )

    def psi_task(
        self,
        requester: Member | None = None,
        provider: Member | None = None,
        protocol: str = "ecdh",
    ) -> tuple[int, bytes, tuple[bytes, bytes]]:
        """The ``requester``'s (the telecom's) PSI task on a fresh dataset of its own and one of
        the ``provider``'s (bank-a's), authorised by a grant: its id, spec hash and inputs."""
        requester, provider = requester or self.telecom, provider or self.bank_a
        mine, theirs = self.dataset(requester), self.dataset(provider)
        grant = self.grant(theirs, provider, requester)
        spec_hash = secrets.token_bytes(32)
        task_id = requester.ledger.tasks.submit_task(
            spec_hash=spec_hash,
            kind=Kind.PSI,
            protocol=PROTOCOL_IDS[protocol],
            inputs=[mine, theirs],
            grant_ids=[ZERO32, grant],
            participants=[requester.org_id, provider.org_id],
            deadline=self.now() + 3_600,
        )
        return task_id, spec_hash, (mine, theirs)


def onboard(admin: Ledger, name: str, index: int) -> Member:
    account = dev_account(index)
    org_id = admin.orgs.register_org(
        name, account.address, f"http://127.0.0.1:{8000 + index}", secrets.token_bytes(32)
    )
    member = admin.as_account(account)
    member.orgs.grant_roles(org_id, account.address, Role.DATA_OWNER | Role.OPERATOR)
    return Member(org_id, member)


@pytest.fixture
def consortium(ledger: Ledger) -> Consortium:
    return Consortium(
        admin=ledger,
        bank_a=onboard(ledger, "bank-a", 1),
        bank_b=onboard(ledger, "bank-b", 2),
        telecom=onboard(ledger, "telecom", 3),
    )


@contextmanager
def reverts(error: str) -> Iterator[None]:
    """Expect the pre-flight of the enclosed call to revert with the custom error ``error``."""
    with pytest.raises(ChainRevert) as caught:
        yield
    assert caught.value.error == error, f"expected {error}, got {caught.value}"


TELECOM_ACCOUNT = 3  # the development account of the consortium fixture's telecom admin


@pytest.fixture
def telecom_api(
    consortium: Consortium, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[TestClient, NodeContext]]:
    """The telecom node's API in process, with an operator token; its store is the test's
    ``store_url`` when the test asks for one (SQLite and PostgreSQL), else a SQLite file."""
    ledger = consortium.telecom.ledger
    keystore = Keystore(tmp_path / "keystore", "test", scrypt_n=2**4)
    account = keystore.import_key(dev_account(TELECOM_ACCOUNT).key)
    if "store_url" in request.fixturenames:
        engine = make_engine(request.getfixturevalue("store_url"))
    else:
        engine = make_engine(sqlite_url(tmp_path / "node.db"))
    node = NodeContext(
        settings=NodeSettings(org="telecom", home=tmp_path),
        engine=engine,
        keystore=keystore,
        account=account,
        node_key=keystore.node_key(),
        ledger=ledger,
        org_id=consortium.telecom.org_id,
        mailbox=Mailbox(local_org=consortium.telecom.org_id),
        http=httpx.Client(),
        indexer=EventIndexer(ledger.client.w3, ledger.deployment, ledger.artifacts, engine),
        policies=Policies.load(None),
    )
    with Session(engine) as session:
        token = issue_token(session, user_name="op", address=account.address, role="operator")
    with TestClient(create_app(node)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, node
    node.close()
