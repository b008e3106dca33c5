"""A malicious requester (mallory: its node modified, its key calling the contracts) against the
honest nodes of a running consortium. Each test is one attack of issue 13 and asserts: refused
(400 at mallory's own node, a revert on chain) or failed on chain, nothing of the provider's data
reaches mallory, and no provider loses its fee."""

from __future__ import annotations

import secrets
import time

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from privledger.evm.accounts import dev_account
from privledger.evm.contracts import FailureReason, TaskStatus
from privledger.evm.errors import ChainRevert
from privledger.node.spec import SpecInput, TaskSpec, parse_spec
from tests.e2e.conftest import advance_chain_time, paused
from tests.e2e.test_explorer import explorer, login
from tests.e2e.test_federated import register, write
from tests.e2e.test_horizontal import FEATURES, write_rows

from .malicious import FEE, Mallory, grant, wait_closed

pytestmark = pytest.mark.security

REGULATOR_ACCOUNT = 4  # anvil development account of the regulator's admin (the demo's)


def _phones(mallory: Mallory, owner: str, shared: int, own: int) -> list[list[str]]:
    """``shared`` of ``owner``'s customers, and ``own`` numbers nobody else has."""
    theirs = sorted(mallory.running.people[owner])[:shared]
    return [[phone] for phone in theirs] + [
        [f"+9{secrets.randbelow(10**12):012d}"] for _ in range(own)
    ]


def _refused(response: object, term: str) -> None:
    status, body = response.status_code, response.json()  # type: ignore[attr-defined]
    assert status == 400, body
    assert body["error"]["code"] == "terms_violation", body
    assert f"term '{term}'" in body["error"]["message"], body


def _failed_for(
    mallory: Mallory,
    task_id: int,
    reason: FailureReason,
    paid_before: int,
    providers: tuple[str, ...] = ("bank-a",),
) -> None:
    """An honest provider (the first of ``providers`` to fail the task on chain; the others may
    then see it failed before they check it) refused the task for ``reason`` (its node's
    record); mallory holds no result, its fee came back and no provider anchored."""
    task = wait_closed(mallory.running, task_id)
    assert task.status is TaskStatus.FAILED, task
    deadline = time.monotonic() + 30
    failures: list[str] = []
    while not failures:
        assert time.monotonic() < deadline, f"none of {providers} recorded a failure"
        for provider in providers:
            with mallory.running.client(provider, "operator") as client:
                failure = client.get(f"/tasks/{task_id}").json()["localFailure"]
            if failure is not None:
                failures.append(failure)
        time.sleep(0.1)
    assert all(failure.startswith(reason.name) for failure in failures), failures
    assert mallory.result(task_id).status_code == 404
    assert mallory.balance() == paid_before + task.fee  # refunded: no provider delivered
    anchored = {anchor.org_id for anchor in mallory.ledger.tasks.anchors(task_id)}
    assert anchored <= {mallory.org_id}


def _spec(mallory: Mallory, protocol: str, inputs: list[SpecInput], **fields: object) -> TaskSpec:
    return parse_spec(
        {"protocol": protocol, "requester": mallory.org_id, "inputs": inputs, **fields}
    )


def test_1_a_psi_grant_does_not_run_the_union(mallory: Mallory) -> None:
    """Attack 1: under plain PSI grants the requester ran union3 and received the providers'
    entire key columns."""
    running = mallory.running
    mine = mallory.register(["phone"], _phones(mallory, "bank-a", 50, 50))
    bank_a, bank_b = running.register("bank-a"), running.register("bank-b")
    grants = [
        grant(running, owner, data, mallory.org_id, kinds=["psi"])
        for owner, data in (("bank-a", bank_a), ("bank-b", bank_b))
    ]
    inputs = [{"dataset": d, "column": "phone"} for d in (mine, bank_a, bank_b)]
    _refused(mallory.submit({"protocol": "union3", "inputs": inputs}), "protocols")

    items = [
        SpecInput(dataset=mine, org=mallory.org_id, column="phone"),
        SpecInput(dataset=bank_a, org=running.org_ids["bank-a"], column="phone"),
        SpecInput(dataset=bank_b, org=running.org_ids["bank-b"], column="phone"),
    ]
    union = _spec(mallory, "union3", items)
    with pytest.raises(ChainRevert) as refused:  # named honestly on chain: the grants refuse
        mallory.forge(union, [bytes(32), *grants])
    assert refused.value.error == "GrantRegistryProtocolNotAllowed"
    before = mallory.balance()
    lying = mallory.forge(union, [bytes(32), *grants], protocol="intersection3")
    _failed_for(mallory, lying, FailureReason.SPEC_MISMATCH, before, ("bank-a", "bank-b"))


def test_1_a_pir_grant_releases_only_the_granted_column(mallory: Mallory) -> None:
    """Attack 1: under a PIR grant the requester could read any value column."""
    running = mallory.running
    path = running.import_dir("bank-a") / f"bank-a-accounts-{secrets.token_hex(3)}.csv"
    phones = sorted(running.people["bank-a"])[:40]
    path.write_text(
        "phone,segment,income\n" + "".join(f"{p},retail,{1000 + i}\n" for i, p in enumerate(phones))
    )
    body = {"path": str(path), "name": "bank-a-accounts", "level": 2, "unitPrice": 10**9}
    with running.client("bank-a", "data_owner") as owner:
        accounts = owner.post("/datasets", json=body).json()["datasetId"]
    terms = {
        "protocols": ["simplepir", "bucket"],
        "columns": {"phone": ["join"], "segment": ["retrieve"]},
    }
    issued = grant(running, "bank-a", accounts, mallory.org_id, terms=terms)
    keys = mallory.register(["phone"], [[phone] for phone in phones[:3]])
    inputs = [
        {"dataset": keys, "column": "phone"},
        {"dataset": accounts, "column": "phone", "valueColumn": "income"},
    ]
    _refused(mallory.submit({"kind": "pir", "protocol": "simplepir", "inputs": inputs}), "columns")

    spec = _spec(
        mallory,
        "simplepir",
        [
            SpecInput(dataset=keys, org=mallory.org_id, column="phone"),
            SpecInput(
                dataset=accounts,
                org=running.org_ids["bank-a"],
                column="phone",
                value_column="income",
            ),
        ],
    )
    before = mallory.balance()
    task_id = mallory.forge(spec, [bytes(32), issued])
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)


def test_1_a_pir_grant_caps_the_keys_asked(mallory: Mallory) -> None:
    """Attack 1: under a PIR grant the requester could look up any number of keys."""
    running = mallory.running
    holder = running.register("bank-a")
    terms = {
        "protocols": ["simplepir", "bucket"],
        "columns": {"phone": ["join"], "segment": ["retrieve"]},
        "maxRequesterSet": 5,
    }
    issued = grant(running, "bank-a", holder, mallory.org_id, terms=terms)
    keys = mallory.register(["phone"], _phones(mallory, "bank-a", 40, 0))
    inputs = [
        {"dataset": keys, "column": "phone"},
        {"dataset": holder, "column": "phone", "valueColumn": "segment"},
    ]
    _refused(
        mallory.submit({"kind": "pir", "protocol": "simplepir", "inputs": inputs}),
        "max_requester_set",
    )

    spec = _spec(
        mallory,
        "simplepir",
        [
            SpecInput(dataset=keys, org=mallory.org_id, column="phone"),
            SpecInput(
                dataset=holder,
                org=running.org_ids["bank-a"],
                column="phone",
                value_column="segment",
            ),
        ],
    )
    before = mallory.balance()  # its own node runs the query: the holder refuses at its header
    task_id = mallory.forge(spec, [bytes(32), issued], run=True)
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)


def published_service(mallory: Mallory, data: str, price: int) -> tuple[str, bytes]:
    """Bank-a publishes a PSI service over ``data``'s phone column at ``price`` and authorises
    mallory to call it: the service's name and the grant it issued."""
    name = f"match-{secrets.token_hex(3)}"
    with mallory.running.client("bank-a", "data_owner") as owner:
        defined = owner.post(
            "/services", json={"name": name, "dataset": data, "column": "phone", "priceWei": price}
        )
        assert defined.status_code == 201, defined.text
        authorised = owner.post(
            f"/services/{name}/callers",
            json={"org": mallory.org_id, "maxCalls": 5, "expiresInS": 3_600},
        )
        assert authorised.status_code == 201, authorised.text
    return name, bytes.fromhex(authorised.json()["grantId"][2:])


def test_1_leaving_out_the_service_binds_its_terms_all_the_same(mallory: Mallory) -> None:
    """Attack 1: a caller of a published PSI service left out ``service`` and ran the same
    computation free, on any column."""
    running = mallory.running
    data = running.register("bank-a")
    price = 10**15
    _name, issued = published_service(mallory, data, price)
    mine = mallory.register(
        ["phone", "segment"], [[p, "retail"] for (p,) in _phones(mallory, "bank-a", 30, 30)]
    )
    inputs = [{"dataset": mine, "column": "phone"}, {"dataset": data, "column": "phone"}]
    _refused(mallory.submit({"inputs": inputs, "feeWei": 0}), "min_fee_wei")
    _refused(
        mallory.submit(
            {"inputs": [inputs[0], {"dataset": data, "column": "segment"}], "feeWei": price}
        ),
        "columns",
    )

    items = [
        SpecInput(dataset=mine, org=mallory.org_id, column="segment"),
        SpecInput(dataset=data, org=running.org_ids["bank-a"], column="segment"),
    ]
    spec = _spec(mallory, "ecdh", items)
    with pytest.raises(ChainRevert) as refused:
        mallory.forge(spec, [bytes(32), issued], fee=0)
    assert refused.value.error == "TaskLedgerFeeBelowFloor"
    before = mallory.balance()
    task_id = mallory.forge(spec, [bytes(32), issued], fee=price)
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)


def test_2_the_provider_caps_the_requester_set(mallory: Mallory) -> None:
    """Attack 2: with no cap on its set size, the requester enumerated the provider's list."""
    running = mallory.running
    data = running.register("bank-a")
    terms = {
        "protocols": ["ecdh", "kkrt"],
        "columns": {"phone": ["join"]},
        "maxRequesterRatio": 0.1,
    }
    issued = grant(running, "bank-a", data, mallory.org_id, terms=terms)  # 100 keys for 1,000 rows
    guesses = mallory.register(["phone"], _phones(mallory, "bank-a", 1_000, 500))
    inputs = [{"dataset": guesses, "column": "phone"}, {"dataset": data, "column": "phone"}]
    _refused(mallory.submit({"protocol": "ecdh", "inputs": inputs}), "max_requester_set")
    items = [
        SpecInput(dataset=guesses, org=mallory.org_id, column="phone"),
        SpecInput(dataset=data, org=running.org_ids["bank-a"], column="phone"),
    ]
    for protocol in ("ecdh", "kkrt"):  # its own node runs it: the provider refuses at the header
        before = mallory.balance()
        task_id = mallory.forge(_spec(mallory, protocol, items), [bytes(32), issued], run=True)
        _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)


def test_3_the_provider_enforces_the_release_threshold(mallory: Mallory) -> None:
    """Attack 3: the release threshold was enforced only by the node that learns the result,
    the requester's; mallory's node releases everything."""
    running = mallory.running
    data = running.register("bank-a")  # level 2: its owner's policy releases 5 rows or more
    grant(running, "bank-a", data, mallory.org_id, kinds=["psi"])
    probes = mallory.register(["phone"], _phones(mallory, "bank-a", 3, 200))
    inputs = [{"dataset": probes, "column": "phone"}, {"dataset": data, "column": "phone"}]
    before = mallory.balance()
    response = mallory.submit({"protocol": "ecdh", "inputs": inputs})
    assert response.status_code == 201, response.text
    _failed_for(mallory, response.json()["taskId"], FailureReason.POLICY_VIOLATION, before)


def test_4_statistics_thresholds_count_only_each_providers_own_rows(mallory: Mallory) -> None:
    """Attack 4: the requester padded the group with its own rows and read back one provider's
    single row (count, sum, histogram)."""
    running = mallory.running
    path = running.import_dir("bank-a") / f"bank-a-one-loan-{secrets.token_hex(3)}.csv"
    path.write_text("customer,amount\nc1,123456.78\n")
    body = {"path": str(path), "name": "bank-a-one-loan", "level": 2, "unitPrice": 10**9}
    with running.client("bank-a", "data_owner") as owner:
        single = owner.post("/datasets", json=body).json()["datasetId"]
    grant(running, "bank-a", single, mallory.org_id, kinds=["stats"])
    padding = mallory.register(["customer", "amount"], [[f"m{i}", 100 + i] for i in range(50)])
    _statistics_refused(mallory, padding, single, [0.0, 1_000.0, 1_000_000.0])


def statistics_body(mallory: Mallory, first: str, second: str) -> dict[str, object]:
    """A joint-statistics task body over the ``amount`` columns of two datasets, dealt by the
    regulator."""
    return {
        "kind": "stats",
        "protocol": "joint-stats",
        "inputs": [
            {"dataset": first, "column": "amount"},
            {"dataset": second, "column": "amount"},
        ],
        "dealer": mallory.running.org_ids["regulator"],
        "fracBits": 8,
    }


def _statistics_refused(mallory: Mallory, padding: str, dataset: str, edges: list[float]) -> None:
    """Mallory's joint statistics over its ``padding`` rows and ``dataset`` (bank-a's), with a
    histogram of ``edges``, through its own node: bank-a refuses it for its threshold."""
    body = {**statistics_body(mallory, padding, dataset), "histogramEdges": edges}
    before = mallory.balance()
    response = mallory.submit(body)
    assert response.status_code == 201, response.text
    _failed_for(mallory, response.json()["taskId"], FailureReason.POLICY_VIOLATION, before)


def test_5_only_a_dealer_the_terms_allow_may_deal(mallory: Mallory) -> None:
    """Attack 5: the requester picked the MPC dealer, any organisation at all."""
    running = mallory.running
    regulator, bank_b = running.org_ids["regulator"], running.org_ids["bank-b"]
    path = running.import_dir("bank-a") / f"bank-a-loans-{secrets.token_hex(3)}.csv"
    path.write_text("customer,amount\n" + "".join(f"c{i},{i * 10}\n" for i in range(40)))
    body = {"path": str(path), "name": "bank-a-loans", "level": 2, "unitPrice": 10**9}
    with running.client("bank-a", "data_owner") as owner:
        loans = owner.post("/datasets", json=body).json()["datasetId"]
    terms = {
        "protocols": ["joint-stats"],
        "columns": {"amount": ["aggregate"]},
        "dealer": regulator,
    }
    issued = grant(running, "bank-a", loans, mallory.org_id, terms=terms)
    own = mallory.register(["customer", "amount"], [[f"m{i}", i] for i in range(40)])
    body = {
        "kind": "stats",
        "protocol": "joint-stats",
        "inputs": [{"dataset": own, "column": "amount"}, {"dataset": loans, "column": "amount"}],
        "dealer": bank_b,  # bank-b, colluding with mallory, would see every share it deals
        "fracBits": 8,
    }
    _refused(mallory.submit(body), "dealer")
    items = [
        SpecInput(dataset=own, org=mallory.org_id, column="amount"),
        SpecInput(dataset=loans, org=running.org_ids["bank-a"], column="amount"),
    ]
    with pytest.raises(ChainRevert) as refused:  # bank-b never consented to deal: no dealer
        mallory.forge(
            _spec(mallory, "joint-stats", items, dealer=bank_b, frac_bits=8), [bytes(32), issued]
        )
    assert refused.value.error == "TaskLedgerDealerNotPublished"
    # the regulator publishes a dealer service, but a grant that names another dealer refuses it
    other = grant(running, "bank-a", loans, mallory.org_id, terms={**terms, "dealer": bank_b})
    with pytest.raises(ChainRevert) as refused:
        mallory.forge(
            _spec(mallory, "joint-stats", items, dealer=regulator, frac_bits=8), [bytes(32), other]
        )
    assert refused.value.error == "GrantRegistryDealerNotAllowed"


def _psi_with_bank_a(mallory: Mallory, common: int) -> tuple[list[dict[str, str]], int]:
    """The inputs of a PSI of mallory's phones with bank-a's (``common`` of them shared), under
    a PSI grant, and bank-a's org id."""
    data = mallory.running.register("bank-a")
    grant(mallory.running, "bank-a", data, mallory.org_id, kinds=["psi"])
    mine = mallory.register(["phone"], _phones(mallory, "bank-a", common, common))
    inputs = [{"dataset": mine, "column": "phone"}, {"dataset": data, "column": "phone"}]
    return inputs, mallory.running.org_ids["bank-a"]


def _settled_after_the_deadline(mallory: Mallory, task_id: int, deadline_s: int) -> None:
    """Mallory never anchors: once the task's deadline passed anyone may close it (a provider's
    worker too), and it is settled to the providers, not refunded."""
    advance_chain_time(mallory.running, deadline_s + 1)
    try:
        mallory.ledger.tasks.expire_task(task_id)
    except ChainRevert as exc:  # a participant's worker closed it at the deadline first
        assert exc.error == "TaskLedgerNotExpirable", exc
    assert wait_closed(mallory.running, task_id).status is TaskStatus.SETTLED


def test_7_the_requester_cannot_take_the_fee_back_after_delivery(mallory: Mallory) -> None:
    """Attack 7: once the protocol had given it the result, the requester failed the task and
    got the whole fee back; the provider's balance stayed 0."""
    running = mallory.running
    inputs, bank_a = _psi_with_bank_a(mallory, 60)
    provider_before, mallory_before = mallory.ledger.metering.balance_of(bank_a), mallory.balance()
    response = mallory.submit({"protocol": "ecdh", "inputs": inputs})
    assert response.status_code == 201, response.text
    task_id = response.json()["taskId"]
    deadline = time.monotonic() + 90
    while mallory.ledger.tasks.anchor_of(task_id, bank_a) == bytes(32):  # until it delivered
        assert time.monotonic() < deadline, mallory.ledger.tasks.get_task(task_id)
        time.sleep(0.02)
    with pytest.raises(ChainRevert) as refused:  # the provider delivered: no failure, no refund
        mallory.ledger.tasks.fail_task(task_id, FailureReason.PROTOCOL_ERROR)
    assert refused.value.error in ("TaskLedgerDelivered", "TaskLedgerInvalidStatus")
    task = wait_closed(running, task_id)
    assert task.status is TaskStatus.SETTLED
    assert mallory.ledger.metering.balance_of(bank_a) == provider_before + FEE
    assert mallory.balance() == mallory_before
    assert len(mallory.result(task_id).json()["items"]) == 60


def test_7_the_requester_cannot_fail_the_task_the_moment_it_has_the_result(
    mallory: Mallory,
) -> None:
    """Attack 7, racing the provider: mallory's modified node fails the task the moment the
    protocol gave it the result, instead of anchoring, and answers the provider's frames late,
    so that a provider anchoring only after its last message would still be waiting. The
    provider anchors before its last message leaves: the failure is refused, and when the
    deadline passes without mallory's anchor the fee goes to the provider."""
    inputs, bank_a = _psi_with_bank_a(mallory, 40)
    provider_before, mallory_before = mallory.ledger.metering.balance_of(bank_a), mallory.balance()
    with mallory.attacking("fail-after-result", "slow-acks"):
        response = mallory.submit({"protocol": "ecdh", "inputs": inputs, "deadlineS": 60})
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        outcome = mallory.attack_log("fail-after-result", task_id)
    assert outcome == "reverted TaskLedgerDelivered", outcome
    assert mallory.ledger.tasks.anchor_of(task_id, bank_a) != bytes(32)
    assert mallory.ledger.tasks.get_task(task_id).status is TaskStatus.RUNNING

    _settled_after_the_deadline(mallory, task_id, 60)
    assert mallory.ledger.metering.balance_of(bank_a) == provider_before + FEE
    assert mallory.balance() == mallory_before  # nothing came back


@pytest.mark.parametrize("protocol", ["kkrt", "rr22"])
def test_7_with_output_to_both_the_requester_cannot_keep_the_providers_output_and_its_fee(
    mallory: Mallory, protocol: str
) -> None:
    """Attack 7 where both parties learn the intersection: the provider's tags give the
    requester its output before the requester's matched positions give the provider its own,
    so the provider cannot anchor before that burst. Mallory takes its output from the tags,
    keeps the positions and fails the task at once to take its fee back. The provider records
    on chain that it delivers before the tags leave: the failure is refused, the provider,
    told nothing, anchors what it answered, and the fee goes to it."""
    running = mallory.running
    data = running.register("bank-a")
    terms = {"protocols": [protocol], "columns": {"phone": ["join"]}, "outputs": ["both"]}
    grant(running, "bank-a", data, mallory.org_id, terms=terms)
    mine = mallory.register(["phone"], _phones(mallory, "bank-a", 30, 30))
    inputs = [{"dataset": mine, "column": "phone"}, {"dataset": data, "column": "phone"}]
    bank_a = running.org_ids["bank-a"]
    provider_before, mallory_before = mallory.ledger.metering.balance_of(bank_a), mallory.balance()
    body = {"protocol": protocol, "inputs": inputs, "output": "both", "deadlineS": 120}
    with mallory.attacking("withhold-reveal", "fail-after-result"):
        response = mallory.submit(body)
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        outcome = mallory.attack_log("fail-after-result", task_id)
    assert outcome == "reverted TaskLedgerDelivered", outcome
    deadline = time.monotonic() + 60  # the provider waits for the positions, then anchors
    while mallory.ledger.tasks.anchor_of(task_id, bank_a) == bytes(32):
        assert time.monotonic() < deadline, mallory.ledger.tasks.get_task(task_id)
        time.sleep(0.2)
    assert mallory.ledger.tasks.units_of(task_id, bank_a) == 60  # the keys it answered
    with running.client("bank-a", "operator") as client:
        assert client.get(f"/tasks/{task_id}/result").status_code == 404  # it was told nothing

    _settled_after_the_deadline(mallory, task_id, 120)
    assert mallory.ledger.metering.balance_of(bank_a) == provider_before + FEE
    assert mallory.balance() == mallory_before  # nothing came back
    with explorer(running) as auditor:  # the auditor sees when the requester was bound
        assert login(auditor, dev_account(REGULATOR_ACCOUNT)).status_code == 200
        page = auditor.get(f"/explorer/tasks/{task_id}").text
    assert "delivery recorded in block" in page, page
    with running.client("bank-a", "operator") as client:  # and so does the task's timeline
        timeline = client.get(f"/tasks/{task_id}").json()["timeline"]
    assert "DeliveryRecorded" in [event["event"] for event in timeline], timeline


def test_7_an_aggregator_that_keeps_done_cannot_take_the_fee_back_nor_zero_a_client(
    mallory: Mallory,
) -> None:
    """Attack 7 in horizontal FL: each secure sum's unmask shares give the aggregator (the
    requester) the pooled statistics, then every round's model, while the clients still wait
    for its ``done``. Mallory's node keeps ``done`` from the clients and fails the task the
    moment it has the model. The clients recorded their delivery before their first unmask
    shares left: the failure is refused, each client, told nothing, anchors its rows, and the
    fee goes to them by their rows."""
    running = mallory.running
    x, y = load_breast_cancer(return_X_y=True)
    shards = {"mallory": range(0, 60), "bank-a": range(60, 140), "bank-b": range(140, 240)}
    tag = secrets.token_hex(3)
    inputs = []
    for org, rows in shards.items():
        ids = [f"{org}-{tag}-{i}" for i in rows]
        if org == "mallory":
            lines = [
                [key, *(repr(float(v)) for v in x[i]), int(y[i])]
                for key, i in zip(ids, rows, strict=True)
            ]
            dataset = mallory.register(["id", *FEATURES, "label"], lines)
        else:
            path = write_rows(running.data_dir / f"h7-{org}-{tag}.csv", ids, x[rows], y[rows])
            dataset = register(running, org, path)
            grant(running, org, dataset, mallory.org_id, kinds=["fl"])
        inputs.append(
            {"dataset": dataset, "column": "id", "features": FEATURES, "valueColumn": "label"}
        )
    banks = {org: running.org_ids[org] for org in ("bank-a", "bank-b")}
    before = {org: mallory.ledger.metering.balance_of(bank) for org, bank in banks.items()}
    mallory_before = mallory.balance()
    body = {"kind": "fl", "protocol": "horizontal-lr", "rounds": 3, "inputs": inputs}
    with mallory.attacking("withhold-done", "fail-after-result"):
        response = mallory.submit({**body, "deadlineS": 150})
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        outcome = mallory.attack_log("fail-after-result", task_id)
    assert outcome == "reverted TaskLedgerDelivered", outcome
    deadline = time.monotonic() + 60  # each client waits for done, then anchors
    for org, bank in banks.items():
        while mallory.ledger.tasks.anchor_of(task_id, bank) == bytes(32):
            assert time.monotonic() < deadline, (org, mallory.ledger.tasks.get_task(task_id))
            time.sleep(0.2)
        assert mallory.ledger.tasks.units_of(task_id, bank) == len(shards[org])

    _settled_after_the_deadline(mallory, task_id, 150)
    paid = {org: mallory.ledger.metering.balance_of(banks[org]) - before[org] for org in banks}
    assert sum(paid.values()) == FEE and mallory.balance() == mallory_before
    assert abs(paid["bank-a"] / FEE - 80 / 180) <= 1e-4  # by their rows


def test_7_a_label_holder_that_keeps_the_weights_it_owes_cannot_take_the_fee_back(
    mallory: Mallory,
) -> None:
    """Attack 7 in vertical LR with the weights released: each party's weights are opened to it
    in turn, the label holder's (the requester's) first. Mallory's node takes its own, keeps its
    share of bank-a's and fails the task. Bank-a recorded its delivery before its share of
    mallory's weights left: the failure is refused, bank-a, told nothing, anchors its aligned
    rows, and the fee is bank-a's."""
    running = mallory.running
    x, y = load_breast_cancer(return_X_y=True)
    rows, tag = np.arange(120), secrets.token_hex(3)
    ids = [f"v7-{tag}-{i}" for i in rows]
    features = [f"f{i}" for i in range(15)]
    mine = mallory.register(
        ["id", *features, "label"],
        [[key, *(repr(float(v)) for v in x[i, :15]), int(y[i])] for i, key in enumerate(ids)],
    )
    path = running.data_dir / f"v7-bank-a-{tag}.csv"  # with 9 rows mallory does not hold
    write(
        path,
        [*ids, *(f"v7-{tag}-b{i}" for i in range(9))],
        np.vstack([x[rows, 15:], x[:9, :15]]),
        None,
    )
    theirs = register(running, "bank-a", path)
    terms = {  # terms that release the weights
        "protocols": ["vertical-lr"],
        "columns": dict.fromkeys(["id", *features], ("join", "aggregate")),
        "outputs": ["requester", "weights"],
    }
    grant(running, "bank-a", theirs, mallory.org_id, terms=terms)
    bank_a = running.org_ids["bank-a"]
    before, mallory_before = mallory.ledger.metering.balance_of(bank_a), mallory.balance()
    body = {
        "kind": "fl",
        "protocol": "vertical-lr",
        "inputs": [
            {"dataset": mine, "column": "id", "features": features, "valueColumn": "label"},
            {"dataset": theirs, "column": "id", "features": features},
        ],
        "dealer": running.org_ids["regulator"],
        "rounds": 10,
        "output": "weights",
        "deadlineS": 150,
    }
    with mallory.attacking("withhold-weights"):
        response = mallory.submit(body)
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        outcome = mallory.attack_log("withhold-weights", task_id)
    assert outcome == "reverted TaskLedgerDelivered", outcome
    assert mallory.ledger.tasks.get_task(task_id).status is not TaskStatus.FAILED
    deadline = time.monotonic() + 60  # bank-a meets mallory's closed channel, then anchors
    while mallory.ledger.tasks.anchor_of(task_id, bank_a) == bytes(32):
        assert time.monotonic() < deadline, mallory.ledger.tasks.get_task(task_id)
        time.sleep(0.2)
    assert mallory.ledger.tasks.units_of(task_id, bank_a) == len(ids)  # its aligned rows

    _settled_after_the_deadline(mallory, task_id, 150)
    assert mallory.ledger.metering.balance_of(bank_a) - before == FEE
    assert mallory.balance() == mallory_before


def test_8_a_fee_below_the_price_is_refused(mallory: Mallory) -> None:
    """Attack 8: no provider checked the fee against its price; a fee of 0 was accepted."""
    running = mallory.running
    data = running.register("bank-a")
    price = 10**15
    terms = {"protocols": ["ecdh"], "columns": {"phone": ["join"]}, "minFeeWei": price}
    issued = grant(running, "bank-a", data, mallory.org_id, terms=terms)
    mine = mallory.register(["phone"], _phones(mallory, "bank-a", 20, 20))
    inputs = [{"dataset": mine, "column": "phone"}, {"dataset": data, "column": "phone"}]
    _refused(mallory.submit({"inputs": inputs, "feeWei": 0}), "min_fee_wei")
    spec = _spec(
        mallory,
        "ecdh",
        [
            SpecInput(dataset=mine, org=mallory.org_id, column="phone"),
            SpecInput(dataset=data, org=running.org_ids["bank-a"], column="phone"),
        ],
    )
    for fee in (0, price - 1):
        with pytest.raises(ChainRevert) as refused:
            mallory.forge(spec, [bytes(32), issued], fee=fee)
        assert refused.value.error == "TaskLedgerFeeBelowFloor"
    assert mallory.ledger.grants.get_grant(issued).used == 0


@pytest.mark.parametrize(("protocol", "output"), [("ecdh", "requester"), ("rr22", "both")])
def test_8_a_fee_below_the_price_per_unit_is_refused_before_the_output_leaves(
    mallory: Mallory, protocol: str, output: str
) -> None:
    """Attack 8, per unit: terms priced per matched row without a fee floor ran with any fee --
    mallory paid 1 wei less than the price of the 40 keys bank-a answered and got the
    intersection. Its own node now refuses such a task; submitted past it, the provider holds
    the fee to its price before its output leaves: at its anchor (output to the requester) or
    when it records its delivery (output to both)."""
    running = mallory.running
    data = running.register("bank-a")
    unit_wei = 10**12
    terms = {
        "protocols": [protocol],
        "columns": {"phone": ["join"]},
        "outputs": [output],
        "price": {"unit": "matched_row", "wei": unit_wei},
    }
    issued = grant(running, "bank-a", data, mallory.org_id, terms=terms)
    mine = mallory.register(["phone"], _phones(mallory, "bank-a", 20, 20))
    inputs = [{"dataset": mine, "column": "phone"}, {"dataset": data, "column": "phone"}]
    bank_a = running.org_ids["bank-a"]
    price = 40 * unit_wei  # the keys bank-a answers: its units, and the most rows it matches
    body = {"protocol": protocol, "inputs": inputs, "output": output}
    _refused(mallory.submit({**body, "feeWei": price - 1}), "price")
    spec = _spec(
        mallory,
        protocol,
        [
            SpecInput(dataset=mine, org=mallory.org_id, column="phone"),
            SpecInput(dataset=data, org=bank_a, column="phone"),
        ],
        output=output,
    )
    before = mallory.balance()
    task_id = mallory.forge(spec, [bytes(32), issued], fee=price - 1, run=True)
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)

    provider_before = mallory.ledger.metering.balance_of(bank_a)
    response = mallory.submit({**body, "feeWei": price})
    assert response.status_code == 201, response.text
    task_id = response.json()["taskId"]
    assert wait_closed(running, task_id).status is TaskStatus.SETTLED
    assert mallory.ledger.metering.balance_of(bank_a) == provider_before + price
    assert len(mallory.result(task_id).json()["items"]) == 20


def test_8_a_set_operation_whose_provider_counts_no_units_is_refused_a_price_per_unit(
    mallory: Mallory,
) -> None:
    """Attack 8 through a protocol whose provider anchors no units (red team): under terms
    priced per matched row that allow ECDH-PSI and the difference, mallory ran the difference
    with a fee of 0 -- the price of 0 units -- and learnt which of its keys bank-a holds. Such a
    protocol cannot hold a price per unit: bank-a refuses it before it reads any data."""
    running = mallory.running
    data = running.register("bank-a")
    terms = {
        "protocols": ["ecdh", "difference"],
        "columns": {"phone": ["join"]},
        "price": {"unit": "matched_row", "wei": 10**15},
    }
    issued = grant(running, "bank-a", data, mallory.org_id, terms=terms)
    mine = mallory.register(["phone"], _phones(mallory, "bank-a", 20, 20))
    inputs = [{"dataset": mine, "column": "phone"}, {"dataset": data, "column": "phone"}]
    _refused(mallory.submit({"protocol": "difference", "inputs": inputs, "feeWei": 0}), "price")
    spec = _spec(
        mallory,
        "difference",
        [
            SpecInput(dataset=mine, org=mallory.org_id, column="phone"),
            SpecInput(dataset=data, org=running.org_ids["bank-a"], column="phone"),
        ],
    )
    before = mallory.balance()
    task_id = mallory.forge(spec, [bytes(32), issued], fee=0, run=True)
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)


def test_a_task_cannot_be_tagged_with_a_project_its_requester_is_not_in(mallory: Mallory) -> None:
    """Mallory's node refuses a task tagged with a project mallory is not in, but the providers
    did not check the tag: submitted past its node, the task ran under bank-a's PSI grant and
    was listed, and audited, as a task of bank-a's project. Bank-a now refuses it before it
    reads any data."""
    running = mallory.running
    data = running.register("bank-a")
    with running.client("bank-a", "operator") as bank:
        project_id = bank.post("/projects", json={"name": "members-only"}).json()["projectId"]
    with running.client("bank-a", "data_owner") as owner:
        added = owner.post(f"/projects/{project_id}/datasets", json={"dataset": data})
        assert added.status_code == 201, added.text
    issued = grant(running, "bank-a", data, mallory.org_id, kinds=["psi"])
    mine = mallory.register(["phone"], _phones(mallory, "bank-a", 20, 20))
    inputs = [
        SpecInput(dataset=mine, org=mallory.org_id, column="phone"),
        SpecInput(dataset=data, org=running.org_ids["bank-a"], column="phone"),
    ]
    spec = _spec(mallory, "ecdh", inputs, project=project_id)
    before = mallory.balance()
    task_id = mallory.forge(spec, [bytes(32), issued])  # its own worker would refuse it too
    _failed_for(mallory, task_id, FailureReason.POLICY_VIOLATION, before)
    with running.client("bank-a", "operator") as bank:  # listed at most as the failure it is
        tagged = bank.get(f"/projects/{project_id}").json()["tasks"]
    assert [task["status"] for task in tagged if task["taskId"] == task_id] in ([], ["failed"])


def test_5_a_dealer_that_withdrew_its_consent_refuses_at_once(mallory: Mallory) -> None:
    """Attack 5: any organisation could be named dealer without consenting. A dealer that
    withdraws its dealer service refuses the tasks still naming it, before it deals anything."""
    running = mallory.running
    regulator = running.org_ids["regulator"]
    path = running.import_dir("bank-a") / f"bank-a-loans-{secrets.token_hex(3)}.csv"
    path.write_text("customer,amount\n" + "".join(f"c{i},{i * 10}\n" for i in range(40)))
    body = {"path": str(path), "name": "bank-a-loans", "level": 2, "unitPrice": 10**9}
    with running.client("bank-a", "data_owner") as owner:
        loans = owner.post("/datasets", json=body).json()["datasetId"]
    grant(running, "bank-a", loans, mallory.org_id, kinds=["stats"])
    own = mallory.register(["customer", "amount"], [[f"m{i}", i] for i in range(40)])
    dealer = running.ledger(REGULATOR_ACCOUNT)
    before = mallory.balance()
    with paused(running.nodes["regulator"]) as resume:
        response = mallory.submit(
            {
                "kind": "stats",
                "protocol": "joint-stats",
                "inputs": [
                    {"dataset": own, "column": "amount"},
                    {"dataset": loans, "column": "amount"},
                ],
                "dealer": regulator,
                "fracBits": 8,
            }
        )
        assert response.status_code == 201, response.text
        dealer.orgs.set_dealer_service(regulator, False)
        resume()
    try:
        _failed_for(
            mallory,
            response.json()["taskId"],
            FailureReason.POLICY_VIOLATION,
            before,
            ("regulator",),
        )
    finally:
        dealer.orgs.set_dealer_service(regulator, True)
