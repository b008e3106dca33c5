"""Nodes on separate hosts (marker ``netns``): the chain and each organisation's node in a
network namespace of its own, with an address of its own on one bridge (``tests/netns.py``),
so every call between them crosses a real link: the nodes publish their hosts' addresses on
chain and reach each other, and the chain, there.

A PSI task completes across the hosts; the provider's cable is unplugged while the protocol
runs (once its node says it runs the task, as ``test_failures.py`` times a kill; 20,000 rows
of ECDH take seconds, so the protocol is under way), and the task fails on chain with
PEER_UNREACHABLE, the fee back with the requester and nothing anchored, while the provider's
node, cut off from peers and chain alike, lives on; once the cable is back, that node closes
its part of the failed task and the next task completes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from web3 import Web3

from privledger.config import Settings
from privledger.demo import consortium
from privledger.evm.accounts import dev_account
from privledger.evm.contracts import FailureReason, TaskStatus
from privledger.evm.deploy import load_deployment
from privledger.node.tls import issue_certificate
from tests.netns import NetnsUnavailable, Network, start_network

from .conftest import Running, wait_local_state, wait_until
from .test_failures import big_dataset
from .test_walking_path import FEE, grant, submit, wait_status

pytestmark = pytest.mark.netns

ORGS = ("telecom", "bank-a")  # the requester and the provider, each on a host of its own
PROVIDER = "bank-a"
ROWS = 20_000  # seconds of ECDH on either side: the cable is pulled while they run


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    """A host for the chain and for each node. It never skips: hosts that cannot be made fail
    the tests, with the reason."""
    try:
        with start_network(["chain", *ORGS]) as made:
            yield made
            return
    except NetnsUnavailable as error:
        reason = str(error)
    pytest.fail(f"the test hosts could not be made: {reason}", pytrace=False)


@pytest.fixture(scope="module", params=[False], ids=["http"])
def spread(
    request: pytest.FixtureRequest, network: Network, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """The consortium with the chain and each node on its own host; its nodes serve HTTPS when
    the test is parametrised with True."""
    tls: bool = request.param
    base = tmp_path_factory.mktemp("netns-tls" if tls else "netns")
    settings = Settings(var_path=base / "var", deployments_path=base / "deployments")
    placements = {name: host.placement for name, host in network.hosts.items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRIVLEDGER_CHANNEL_TIMEOUT_S", "10")  # a vanished peer is seen in seconds
        with consortium(settings, None, placements, tls=tls) as (handle, info, nodes):
            w3 = Web3(Web3.HTTPProvider(handle.rpc_url))
            deployment = load_deployment(settings.deployments_dir, w3.eth.chain_id)
            assert deployment is not None
            yield Running(
                info=info,
                nodes=nodes,
                org_ids={org["name"]: org["orgId"] for org in info["orgs"]},
                people={},
                data_dir=base / "data",
                w3=w3,
                deployment=deployment,
                settings=settings,
            )


def _intersection(running: Running, task_id: int) -> set[str]:
    """The requester's output of a task that must settle."""
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task_id, {"settled", "failed"}, timeout_s=120)
        assert final["status"] == "settled", final
        return set(client.get(f"/tasks/{task_id}/result").json()["items"])


def test_psi_across_hosts_survives_a_cut_link(spread: Running, network: Network) -> None:
    running = spread
    ledger = running.ledger(0)
    for org in ORGS:  # each node is reached at its own host's address, as published on chain
        address = network.hosts[org].address
        assert running.nodes[org].url == f"http://{address}:8000"
        assert ledger.orgs.get_org(running.org_ids[org]).endpoint == running.nodes[org].url
    assert running.info["rpcUrl"] == f"http://{network.hosts['chain'].address}:8545"

    shared = [f"+44{secrets.randbelow(10**10):010d}" for _ in range(1_000)]
    mine = big_dataset(running, "telecom", shared, ROWS)
    theirs = big_dataset(running, PROVIDER, shared, ROWS)
    grant(running, PROVIDER, theirs, "telecom")
    first = submit(running, mine, theirs)
    assert _intersection(running, first["taskId"]) >= set(shared)

    telecom_org = running.org_ids["telecom"]
    balance = ledger.metering.balance_of(telecom_org)
    cut = submit(running, mine, theirs)["taskId"]
    try:
        # the provider's worker is inside the task: the seconds of ECDH have begun
        wait_local_state(running, PROVIDER, cut, "running", timeout_s=60)
        network.cut(PROVIDER)
        with running.client("telecom", "operator") as client:
            final = wait_status(client, cut, {"settled", "failed"}, timeout_s=120)
        assert final["status"] == "failed", final
        assert final["failureReason"] == FailureReason.PEER_UNREACHABLE, final
        refunds = [e["args"] for e in final["timeline"] if e["event"] == "FeeRefunded"]
        assert refunds == [{"taskId": cut, "payerOrg": telecom_org, "amount": FEE}]
        assert ledger.metering.balance_of(telecom_org) == balance + FEE
        assert ledger.tasks.get_task(cut).status is TaskStatus.FAILED
        assert ledger.tasks.anchors(cut) == ()
        assert running.nodes[PROVIDER].process.poll() is None  # cut off, not dead
    finally:
        network.restore(PROVIDER)
    # back on the network, the provider closes its part of the failed task; nothing anchored
    assert wait_local_state(running, PROVIDER, cut, "failed", timeout_s=90)["status"] == "failed"
    assert ledger.tasks.anchors(cut) == ()

    after = submit(running, mine, theirs)
    assert _intersection(running, after["taskId"]) >= set(shared)


@pytest.mark.parametrize("spread", [True], ids=["tls"], indirect=True)
def test_psi_over_tls_and_a_certificate_the_chain_does_not_vouch_for_is_refused(
    spread: Running, network: Network
) -> None:
    running = spread
    ledger = running.ledger(0)
    for org in ORGS:  # HTTPS only, at the endpoints published on chain
        address = network.hosts[org].address
        assert ledger.orgs.get_org(running.org_ids[org]).endpoint == f"https://{address}:8000"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{address}:8000/api/v1/health", timeout=5)
        with pytest.raises(httpx.ConnectError):  # self-signed: no CA vouches for it
            httpx.get(f"https://{address}:8000/api/v1/health", timeout=5)

    shared = [f"+44{secrets.randbelow(10**10):010d}" for _ in range(100)]
    mine = big_dataset(running, "telecom", shared, 2_000)
    theirs = big_dataset(running, PROVIDER, shared, 2_000)
    grant(running, PROVIDER, theirs, "telecom")
    first = submit(running, mine, theirs)  # spec fetch and frames between nodes over TLS
    assert _intersection(running, first["taskId"]) >= set(shared)

    # the provider's node comes back presenting a certificate endorsed by the telecom's admin:
    # a real member of the consortium, but not of the organisation that published the endpoint
    bank = running.nodes[PROVIDER]
    bank.stop()
    home = running.settings.var_dir / "nodes" / PROVIDER
    address = network.hosts[PROVIDER].address
    telecom_admin = dev_account(3)
    assert ledger.orgs.org_of(telecom_admin.address) == running.org_ids["telecom"]
    issue_certificate(
        telecom_admin,
        running.org_ids["telecom"],
        address,
        home / "tls" / "cert.pem",
        home / "tls" / "key.pem",
    )
    bank.restart()
    wait_until(lambda: _serves_unverified(bank.url), "the provider's node serves again")
    with pytest.raises(httpx.ConnectError, match="endorsed by"):  # refused in the handshake
        httpx.get(f"{bank.url}/api/v1/health", verify=bank.verify, timeout=5)
    # and so is it by its peer: the requester sends it no frame, the task fails and is refunded
    telecom_org = running.org_ids["telecom"]
    balance = ledger.metering.balance_of(telecom_org)
    refused = submit(running, mine, theirs)["taskId"]
    with running.client("telecom", "operator") as client:
        final = wait_status(client, refused, {"settled", "failed"}, timeout_s=120)
    assert final["status"] == "failed", final
    assert final["failureReason"] == FailureReason.PEER_UNREACHABLE, final
    assert ledger.metering.balance_of(telecom_org) == balance + FEE
    assert ledger.tasks.anchors(refused) == ()


def _serves_unverified(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", verify=False, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
