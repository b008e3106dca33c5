"""Vertical tasks align their parties' rows by PSI inside the task. The requester was the party
that learned the common ids -- the KKRT receiver with two parties, the leader of the three-party
intersection with three -- and each provider checked its release threshold only afterwards: a
requester probing a handful of ids learned which of them were a provider's customers, and the
provider's refusal came too late. Mallory's node logs every id its alignment tells it
(``log-alignment`` in :mod:`tests.security.modified_node`); the providers' level-2 data release
5 rows or more (their policy), and mallory brings 3 or 4 ids."""

from __future__ import annotations

import secrets
import time

import httpx
import numpy as np
import pytest

from privledger.evm.contracts import FailureReason
from privledger.node.terms import GrantTerms, enforces
from tests.e2e.test_federated import register, write

from .malicious import Mallory, grant
from .test_requester_attacks import _failed_for

pytestmark = pytest.mark.security

FEATURES = ["f0", "f1"]


def _customers(mallory: Mallory, org: str, ids: list[str], **granted: object) -> str:
    """``org``'s level-2 dataset of ``ids`` with two feature columns, granted to mallory (by
    ``granted`` terms, else for every FL task)."""
    running = mallory.running
    path = running.data_dir / f"align-{org}-{secrets.token_hex(3)}.csv"
    write(path, ids, np.random.default_rng(len(ids)).normal(size=(len(ids), 2)), None)
    dataset = register(running, org, path)
    grant(running, org, dataset, mallory.org_id, **(granted or {"kinds": ["fl"]}))
    return dataset


def _probe(
    mallory: Mallory,
    providers: list[str],
    probes: list[str],
    body: dict[str, object],
    refuser: tuple[str, int] = ("bank-a", 5),
) -> None:
    """Mallory's task over its ``probes`` (as the label holder) and the providers' granted
    datasets: the ``refuser`` refuses it for its threshold, and by then mallory's node has learned
    none of its probes; the task fails on chain and mallory's fee comes back."""
    running = mallory.running
    mine = mallory.register(
        ["id", *FEATURES, "label"],
        [[key, 0.5, -0.5, index % 2] for index, key in enumerate(probes)],
    )
    if "dealer" in body:
        body = {**body, "dealer": running.org_ids[str(body["dealer"])]}
    inputs = [{"dataset": mine, "column": "id", "features": FEATURES, "valueColumn": "label"}]
    inputs += [{"dataset": dataset, "column": "id", "features": FEATURES} for dataset in providers]
    log = mallory.attacks / "log-alignment.log"
    log.unlink(missing_ok=True)
    before = mallory.balance()
    with mallory.attacking("log-alignment"):
        response = mallory.submit({"kind": "fl", "inputs": inputs, **body})
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        _local_failure(mallory.client(), task_id)  # its node gave up: its log is complete
    learned = (
        {bytes.fromhex(line).decode() for line in log.read_text().split()}
        if log.exists()
        else set()
    )
    assert learned & set(probes) == set()
    _failed_for(mallory, task_id, FailureReason.POLICY_VIOLATION, before, (refuser[0],))
    refusal = _local_failure(running.client(refuser[0], "operator"), task_id)
    assert f"below the release threshold {refuser[1]}" in refusal, refusal


def _local_failure(client: httpx.Client, task_id: int, timeout_s: float = 90) -> str:
    """Why the node of ``client`` did not finish ``task_id``, once it recorded that."""
    deadline = time.monotonic() + timeout_s
    with client:
        while True:
            failure = client.get(f"/tasks/{task_id}").json()["localFailure"]
            if failure is not None:
                return str(failure)
            assert time.monotonic() < deadline, f"no failure of task {task_id} recorded"
            time.sleep(0.2)


@pytest.mark.parametrize(
    "body",
    [
        {"protocol": "vertical-lr", "rounds": 5, "dealer": "regulator"},
        {"protocol": "vertical-gbdt", "gbdt": {"trees": 1, "depth": 1, "min_child_samples": 5}},
    ],
    ids=["vertical-lr", "vertical-gbdt"],
)
def test_two_party_alignment_tells_mallory_nothing_below_the_providers_threshold(
    mallory: Mallory, body: dict[str, object]
) -> None:
    tag = secrets.token_hex(3)
    customers = [f"al-{tag}-{i}" for i in range(40)]
    dataset = _customers(mallory, "bank-a", customers)
    probes = [customers[3], customers[17], f"al-{tag}-stranger"]  # are these bank-a's?
    _probe(mallory, [dataset], probes, body)


def test_three_party_alignment_tells_mallory_nothing_below_the_providers_threshold(
    mallory: Mallory,
) -> None:
    tag = secrets.token_hex(3)
    customers = [f"al3-{tag}-{i}" for i in range(40)]
    bank_a = _customers(mallory, "bank-a", customers)
    telecom = _customers(mallory, "telecom", customers[:20])
    probes = [customers[2], customers[11], customers[30], f"al3-{tag}-stranger"]
    body = {"protocol": "vertical-lr", "rounds": 5, "dealer": "regulator"}
    _probe(mallory, [bank_a, telecom], probes, body)


def test_every_provider_checks_its_threshold_before_the_requester_gets_an_id(
    mallory: Mallory,
) -> None:
    """Three parties: bank-a learns the intersection of 12 ids and releases it (its threshold is
    5); the telecom's grant asks for 15 rows (``min_result``, which vertical tasks now enforce):
    it receives the ids from bank-a before mallory does, and refuses."""
    tag = secrets.token_hex(3)
    customers = [f"al15-{tag}-{i}" for i in range(40)]
    bank_a = _customers(mallory, "bank-a", customers)
    terms = {
        "protocols": ["vertical-lr"],
        "columns": {"id": ["join"], **{f: ["aggregate"] for f in FEATURES}},
        "minResult": 15,
    }
    telecom = _customers(mallory, "telecom", customers[:30], terms=terms)
    probes = [*customers[:12], f"al15-{tag}-stranger"]
    body = {"protocol": "vertical-lr", "rounds": 5, "dealer": "regulator"}
    _probe(mallory, [bank_a, telecom], probes, body, refuser=("telecom", 15))


@pytest.mark.parametrize("protocol", ["vertical-lr", "vertical-gbdt", "vertical-predict"])
def test_vertical_grants_may_ask_for_a_minimum_result(protocol: str) -> None:
    """Their providers check the aligned rows before the requester learns any id, so terms with
    ``min_result`` no longer refuse them (they did: the requester learned the ids first)."""
    terms = GrantTerms(protocols=(protocol,), columns={"id": ("join",)}, min_result=15)
    assert terms.unenforceable() is None
    assert enforces(protocol, "min_result")
