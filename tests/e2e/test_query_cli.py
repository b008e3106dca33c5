"""Anonymous query, joint statistics and the multi-lending check as an analyst runs them --
through the command line and through the SDK, against real nodes -- and what each call is
metered: the answers equal the plaintext ones, and the escrowed fee is split among the data
providers exactly (to the wei) as the settlement code promises: by units x unit price, in basis
points by the largest remainder, the last payee taking the rounding remainder on chain.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
from Crypto.Hash import keccak
from typer.testing import CliRunner

from privledger.cli import app
from privledger.sdk import NodeClient
from privledger.wire.tasks import TaskOut

from .conftest import Running
from .test_statistics import LENDING_TERMS
from .test_walking_path import grant

FEE = 10**16 + 7  # odd: the split has a rounding remainder
DEALER = "regulator"
HOLDER_PRICE = 10**12  # bank-a's customer list (PIR)
PRICES = {"bank-a": 10**9, "bank-b": 3 * 10**9, "telecom": 2 * 10**9}


def cli(running: Running, org: str, *args: str) -> dict[str, Any]:
    """``privledger ARGS`` in-process as ``org``'s analyst (operator token; the data owner's
    token for one-off query datasets), its JSON output parsed."""
    node = running.nodes[org]
    env = {
        "PRIVLEDGER_NODE_URL": node.url,
        "PRIVLEDGER_TOKEN": node.tokens["operator"],
        "PRIVLEDGER_OWNER_TOKEN": node.tokens["data_owner"],
    }
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def sdk(running: Running, org: str, role: str = "operator") -> NodeClient:
    node = running.nodes[org]
    return NodeClient(node.url, node.tokens[role])


def register(running: Running, org: str, name: str, header: str, rows: Sequence[str]) -> str:
    path = running.data_dir / f"{org}-{name}-{secrets.token_hex(3)}.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    with sdk(running, org, "data_owner") as owner:
        return owner.register_file(path, name, level=2, unit_price=PRICES[org]).dataset_id


def balances(running: Running) -> dict[str, int]:
    metering = running.ledger(0).metering
    return {org: metering.balance_of(org_id) for org, org_id in running.org_ids.items()}


def check_settlement(
    running: Running,
    answer_task: TaskOut,
    before: dict[str, int],
    shares: dict[str, int],
    units: dict[str, int],
) -> None:
    """The ledger paid the providers their anchored ``units`` x unit price as shares of the fee
    (``shares``: basis points, as the provenance record rounds them), nothing to anyone else, to
    the wei; the record of whoever settled is the one hashed on chain."""
    task_id = answer_task.task_id
    assert answer_task.status == "settled" and answer_task.fee == FEE
    payees = sorted(shares, key=lambda org: running.org_ids[org])
    ledger = running.ledger(0)
    assert {org: ledger.tasks.units_of(task_id, running.org_ids[org]) for org in payees} == units
    weights = {org: units[org] * PRICES[org] for org in payees}  # one payee: the whole fee
    total = sum(weights.values())
    expected = {org: FEE * weights[org] // total for org in payees[:-1]}
    expected[payees[-1]] = FEE - sum(expected.values())  # the contract's last payee
    after = balances(running)
    paid = {org: after[org] - before[org] for org in after if after[org] != before[org]}
    assert paid == expected, (paid, expected)
    allocated = {
        event.args["payeeOrg"]: event.args["amount"]
        for event in answer_task.timeline
        if event.event == "FeeAllocated"
    }
    assert allocated == {running.org_ids[org]: amount for org, amount in expected.items()}
    provenance_hash, settled = ledger.tasks.settlement_of(task_id)
    records = [
        path.read_bytes()
        for org in running.nodes
        if (
            path := running.settings.var_dir
            / "nodes"
            / org
            / "results"
            / f"task-{task_id}-provenance.json"
        ).is_file()
    ]
    (record,) = (
        r for r in records if keccak.new(digest_bits=256, data=r).digest() == provenance_hash
    )
    assert settled
    fields = json.loads(record)
    assert list(fields["bps"]) == [shares[org] for org in payees]
    names = {org_id: org for org, org_id in running.org_ids.items()}
    contributed = {
        names[item["org_id"]]: item["units"]
        for item in fields["contributions"]
        if item["org_id"] != answer_task.requester_org
    }
    assert contributed == units


def test_anonymous_query_from_the_cli_and_the_sdk_paid_per_key(running: Running) -> None:
    holder_rows = dict(
        line.split(",")[:2]
        for line in (running.data_dir / "bank-a.csv").read_text().splitlines()[1:]
    )
    with sdk(running, "bank-a", "data_owner") as owner:
        holder = owner.register_dataset(
            "bank-a.csv", "pir-list", level=2, unit_price=HOLDER_PRICE
        ).dataset_id
    grant(running, "bank-a", holder, "telecom", kinds=["pir"], maxUses=2)
    present = sorted(holder_rows)[5:8]

    before = balances(running)
    out = cli(
        running,
        "telecom",
        "query",
        "pir",
        "--dataset",
        holder,
        "--column",
        "phone",
        "--value-column",
        "segment",
        *[arg for key in [present[0], "+0000000001"] for arg in ("--key", key)],
        "--fee-wei",
        str(FEE),
    )
    assert out["values"] == {present[0]: holder_rows[present[0]], "+0000000001": None}
    with sdk(running, "telecom") as node:
        task = node.task(out["taskId"])
    check_settlement(running, task, before, {"bank-a": 10_000}, {"bank-a": 2})

    # the SDK: its own keys dataset, the k-anonymous bucket mode, a repeated key counted once
    with sdk(running, "telecom", "data_owner") as owner:
        keys = owner.register_rows(
            ["msisdn"], [[k] for k in [*present, present[1], "+0000000002"]], name="keys"
        ).dataset_id
    before = balances(running)
    with sdk(running, "telecom") as node:
        answer = node.pir_query(
            holder,
            column="phone",
            value_column="segment",
            keys_dataset=keys,
            keys_column="msisdn",
            mode="bucket",
            fee_wei=FEE,
        )
    assert answer.values == {**{k: holder_rows[k] for k in present}, "+0000000002": None}
    check_settlement(running, answer.task, before, {"bank-a": 10_000}, {"bank-a": 4})


def test_joint_statistics_from_the_cli_and_the_sdk_split_by_rows_and_unit_price(
    running: Running,
) -> None:
    rng = np.random.default_rng(3)
    sizes = {"telecom": 200, "bank-a": 300, "bank-b": 250}
    values = {org: rng.integers(0, 10**6, rows) / 100 for org, rows in sizes.items()}
    datasets = {
        org: register(running, org, "amounts", "amount", [f"{v:.2f}" for v in column])
        for org, column in values.items()
    }
    for org in ("bank-a", "bank-b"):
        grant(running, org, datasets[org], "telecom", kinds=["stats"], maxUses=2)
    pooled = np.concatenate([values["telecom"], values["bank-a"], values["bank-b"]])
    order = [datasets["telecom"], datasets["bank-a"], datasets["bank-b"]]
    dealer = str(running.org_ids[DEALER])
    # each provider's own rows x unit price: 300 x 10^9 and 250 x 3 x 10^9 -> 2857 and 7143 bps
    shares = {"bank-a": 2_857, "bank-b": 7_143}
    units = {"bank-a": sizes["bank-a"], "bank-b": sizes["bank-b"]}

    before = balances(running)
    edges = [0.0, 2_500.0, 5_000.0, 10_000.0]
    args = [arg for d in order for arg in ("--dataset", d)]
    out = cli(
        running,
        "telecom",
        "stats",
        "run",
        *args,
        "--column",
        "amount",
        "--dealer",
        dealer,
        "--edges",
        ",".join(str(edge) for edge in edges),
        "--op",
        "mean",
        "--op",
        "histogram",
        "--frac-bits",
        "8",
        "--fee-wei",
        str(FEE),
    )
    assert out["histogram"] == np.histogram(pooled, bins=edges)[0].tolist()
    assert abs(out["mean"] - pooled.mean()) < 1e-3
    assert not {"count", "sum", "variance"} & set(out)  # only what --op asked for is printed
    with sdk(running, "telecom") as node:
        task = node.task(out["taskId"])
    check_settlement(running, task, before, shares, units)

    before = balances(running)
    with sdk(running, "telecom") as node:
        answer = node.joint_stats(
            order, column="amount", dealer=int(dealer), frac_bits=8, fee_wei=FEE
        )
    assert answer.count == pooled.size and not answer.suppressed
    assert answer.sum is not None and abs(answer.sum - pooled.sum()) < 3 * 2**-9
    assert answer.variance is not None
    assert abs(answer.variance - pooled.var()) / pooled.var() < 1e-6
    check_settlement(running, answer.task, before, shares, units)


def test_multi_lending_from_the_cli_and_the_sdk_paid_per_call(running: Running) -> None:
    others = {
        f"c{i}": int(v) for i, v in enumerate(np.random.default_rng(4).integers(0, 10**6, 50))
    }
    books = {
        "bank-b": register(
            running,
            "bank-b",
            "book",
            "customer,amount",
            [f"{c},{a}" for c, a in {**others, "alice": 120_000}.items()],
        ),
        "telecom": register(
            running,
            "telecom",
            "book",
            "customer,amount",
            [f"{c},{a}" for c, a in {**others, "alice": 30_000, "bob": 5}.items()],
        ),
    }
    for org, dataset in books.items():
        grant(running, org, dataset, "bank-a", terms=LENDING_TERMS, maxUses=3)
    banks = [books["bank-b"], books["telecom"]]
    dealer = running.org_ids[DEALER]
    # one unit per bank and call x unit price: 3 x 10^9 and 2 x 10^9 -> 6000 and 4000 bps
    shares, units = {"bank-b": 6_000, "telecom": 4_000}, {"bank-b": 1, "telecom": 1}

    before = balances(running)
    out = cli(
        running,
        "bank-a",
        "lending",
        "check",
        "--customer",
        "alice",
        "--limit",
        "150000",  # exactly the total: equal is not over the limit
        *[arg for b in banks for arg in ("--bank", b)],
        "--dealer",
        str(dealer),
        "--fee-wei",
        str(FEE),
    )
    assert out["mode"] == "exceeds" and out["exceeds"] is False and "total" not in out
    with sdk(running, "bank-a") as node:
        task = node.task(out["taskId"])
    check_settlement(running, task, before, shares, units)

    with sdk(running, "bank-a", "data_owner") as owner:
        query = owner.register_rows(["customer"], [["alice"]], name="who").dataset_id
    before = balances(running)
    with sdk(running, "bank-a") as node:
        answer = node.lending_check(query, banks=banks, dealer=dealer, fee_wei=FEE)
    assert answer.mode == "total" and answer.total == 150_000 and answer.banks == 2
    check_settlement(running, answer.task, before, shares, units)
