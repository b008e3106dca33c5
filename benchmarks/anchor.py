"""Anchoring throughput: result digests per second via Merkle batches vs one transaction per digest,
and the gas of one full task lifecycle. Prints one JSON object (see shared BENCHMARKS.md).

Runs against its own fresh anvil; every anchored batch is checked (random inclusion proofs verified
by the contract) before its time is reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import sys
import time
from typing import Any

from web3 import Web3

from privledger.config import get_settings
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import start_anvil
from privledger.evm.client import ChainClient
from privledger.evm.compiler import compile_contracts
from privledger.evm.contracts import Kind, Role
from privledger.evm.deploy import deploy_contracts
from privledger.evm.errors import ErrorDecoder
from privledger.evm.ledger import Ledger
from privledger.evm.merkle import MerkleTree
from privledger.node.spec import PROTOCOL_IDS
from privledger.node.terms import GrantTerms

BATCH_LABEL = b"bench".ljust(32, b"\0")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _onboard(admin: Ledger) -> tuple[Ledger, Ledger, int, int]:
    """Two orgs whose admins are also data owners and operators."""
    ledgers, org_ids = [], []
    for index, name in ((1, "provider"), (2, "requester")):
        account = dev_account(index)
        org_id = admin.orgs.register_org(name, account.address, f"http://{name}", bytes(32))
        org_ledger = admin.as_account(account)
        org_ledger.orgs.grant_roles(org_id, account.address, Role.DATA_OWNER | Role.OPERATOR)
        ledgers.append(org_ledger)
        org_ids.append(org_id)
    return ledgers[0], ledgers[1], org_ids[0], org_ids[1]


def measure_batches(operator: Ledger, n: int, batches: int) -> float:
    """Seconds to build and anchor ``batches`` trees of ``n`` digests, each checked on chain."""
    total = 0.0
    for _ in range(batches):
        digests = [secrets.token_bytes(32) for _ in range(n)]
        start = time.perf_counter()
        tree = MerkleTree(digests)
        batch_id, _receipt = operator.anchors.anchor_batch(tree.root, n, BATCH_LABEL)
        total += time.perf_counter() - start
        for index in (secrets.randbelow(n) for _ in range(3)):
            if not operator.anchors.verify(batch_id, digests[index], tree.proof(index)):
                raise SystemExit(f"inclusion proof of digest {index} failed on chain")
    return total


def measure_single(operator: Ledger, m: int) -> float:
    """Seconds to anchor ``m`` digests with one transaction each, each checked on chain."""
    digests = [secrets.token_bytes(32) for _ in range(m)]
    before = operator.anchors.batch_count()
    start = time.perf_counter()
    for digest in digests:
        operator.anchors.anchor_batch(MerkleTree([digest]).root, 1, BATCH_LABEL)
    seconds = time.perf_counter() - start
    if operator.anchors.batch_count() != before + m:
        raise SystemExit("one-per-transaction baseline lost a digest")
    if not operator.anchors.verify(before + m, digests[-1], []):
        raise SystemExit("single-digest anchor does not verify")
    return seconds


def task_lifecycle_gas(
    admin: Ledger, provider: Ledger, requester: Ledger, provider_org: int
) -> tuple[int, dict[str, int]]:
    """Gas of one task's life: submit (one own input, one granted foreign input, two participants,
    fee escrowed above the grant's floor) + two result anchors (the provider's with its usage) +
    settlement by the provider, computed on chain; the total and each step's."""
    requester_org = requester.orgs.org_of(requester.client.address)
    dataset = provider.data.register(
        schema_hash=secrets.token_bytes(32),
        commitment=secrets.token_bytes(32),
        row_count=1000,
        level=2,
        unit_price=10**9,
    )
    now = admin.client.w3.eth.get_block("latest")["timestamp"]
    terms = GrantTerms(protocols=("ecdh",), columns={"phone": ("join",)}, min_fee_wei=10**14)
    grant = provider.grants.grant(
        dataset,
        requester_org,
        terms.chain_terms(expiry=now + 86_400, max_uses=10),
        terms.canonical_json(),
    )
    own = requester.data.register(
        schema_hash=secrets.token_bytes(32),
        commitment=secrets.token_bytes(32),
        row_count=1000,
        level=2,
        unit_price=0,
    )
    gas_before = requester.client.gas_used + provider.client.gas_used
    before = requester.tasks.task_count()
    steps: dict[str, int] = {}
    requester.tasks.submit_task(
        spec_hash=secrets.token_bytes(32),
        kind=Kind.PSI,
        protocol=PROTOCOL_IDS["ecdh"],
        inputs=[own, dataset],
        grant_ids=[bytes(32), grant],
        participants=[requester_org, provider_org],
        deadline=now + 3_600,
        fee=10**15,
    )
    steps["submit"] = requester.client.gas_used + provider.client.gas_used - gas_before
    task_id = before + 1
    for name, ledger in (("anchor_requester", requester), ("anchor_provider", provider)):
        receipt = ledger.tasks.anchor_result(
            task_id, secrets.token_bytes(32), secrets.token_bytes(32), 700
        )
        steps[name] = int(receipt["gasUsed"])
    receipt = provider.tasks.settle_task(task_id, secrets.token_bytes(32))
    steps["settle"] = int(receipt["gasUsed"])
    if provider.metering.balance_of(provider_org) != 10**15:
        raise SystemExit("settlement did not pay the provider the whole fee")
    total = requester.client.gas_used + provider.client.gas_used - gas_before
    if total != sum(steps.values()):
        raise SystemExit("the lifecycle sent transactions it does not account for")
    return total, steps


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="digests per Merkle batch")
    parser.add_argument("--batches", type=int, default=3, help="Merkle batches to anchor")
    parser.add_argument("--baseline", type=int, default=300, help="digests sent one per tx")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    settings = get_settings()
    artifacts = compile_contracts(settings)
    with start_anvil(settings.chain_dir) as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        errors = ErrorDecoder(artifact.abi for artifact in artifacts.values())
        admin_client = ChainClient(w3, dev_account(0), errors)
        deployment = deploy_contracts(
            admin_client, artifacts, settings.var_dir / "bench-deployments"
        )
        admin = Ledger.connect_dev(w3, artifacts, deployment)
        provider, requester, provider_org, _ = _onboard(admin)
        batch_seconds = measure_batches(provider, args.n, args.batches)
        single_seconds = measure_single(provider, args.baseline)
        lifecycle_gas, lifecycle_steps = task_lifecycle_gas(
            admin, provider, requester, provider_org
        )

    result: dict[str, Any] = {
        "bench": "anchor",
        "params": {"n": args.n, "batches": args.batches, "baseline": args.baseline},
        "seconds": round(batch_seconds, 4),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "digests_per_s": round(args.n * args.batches / batch_seconds),
        "baseline_digests_per_s": round(args.baseline / single_seconds, 1),
        "task_lifecycle_gas": lifecycle_gas,
        "task_lifecycle_gas_steps": lifecycle_steps,
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
