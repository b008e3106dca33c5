"""The provenance record a requester settles a completed task by (F6)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privledger.evm.contracts import Dataset
from privledger.evm.ledger import Ledger
from privledger.metering.provenance import Contribution, ProvenanceRecord, provenance
from privledger.node.spec import HORIZONTAL_PROTOCOLS, TaskSpec
from privledger.protocols.fl.contribution import fee_shares
from privledger.store.models import LocalTask


def settlement_record(ledger: Ledger, spec: TaskSpec, row: LocalTask) -> ProvenanceRecord:
    """Vertical FL pays by measured contribution, horizontal FL by training rows, everything
    else by usage."""
    if spec.protocol == "vertical-lr":
        return contribution_record(spec, row)
    if spec.protocol in HORIZONTAL_PROTOCOLS:
        return sample_record(ledger, spec, row)
    return usage_record(ledger, spec, row)


def _result(row: LocalTask) -> dict[str, Any]:
    if row.result_path is None:
        raise RuntimeError(f"task {row.task_id} has no local result to settle from")
    (output,) = json.loads(Path(row.result_path).read_text())
    result: dict[str, Any] = json.loads(output)
    return result


def sample_record(ledger: Ledger, spec: TaskSpec, row: LocalTask) -> ProvenanceRecord:
    """Horizontal FL: every client that stayed to the end is paid its training rows (FedAvg's
    weight; the dataset's row count on chain) x its unit price. This is the stated stand-in for
    Shapley values: retraining on subsets of clients would show the aggregator the secure sums
    of subsets, from which single clients' updates follow."""
    stayed = {int(org) for org in _result(row)["clients"]}
    return usage_record(ledger, spec, row, units=lambda dataset: dataset.row_count, only=stayed)


def contribution_record(spec: TaskSpec, row: LocalTask) -> ProvenanceRecord:
    """Federated learning: the fee follows each party's Shapley contribution to the model."""
    measured = _result(row).get("contributions", {})
    shares = fee_shares({int(org): float(value) for org, value in measured.items()})
    datasets = {item.org: item.dataset for item in spec.inputs}
    payees = tuple(org for org in sorted(shares) if shares[org] > 0)
    return ProvenanceRecord(
        task_id=row.task_id,
        kind="fl",
        contributions=tuple(
            Contribution(org, datasets[org], units=shares[org], unit_price=1) for org in payees
        ),
        payees=payees,
        bps=tuple(shares[org] for org in payees),
    )


def usage_record(
    ledger: Ledger,
    spec: TaskSpec,
    row: LocalTask,
    *,
    units: Callable[[Dataset], int] | None = None,
    only: set[int] | None = None,
) -> ProvenanceRecord:
    """Providers are paid by the units they contributed (by default the task's result size)
    × their unit price; a derived dataset passes its upstream share to its parents' owners."""
    contributions = []
    for item in spec.inputs:
        if only is not None and item.org not in only:
            continue
        dataset = ledger.data.get_dataset(bytes.fromhex(item.dataset[2:]))
        parents = tuple(ledger.data.get_dataset(parent).owner_org for parent in dataset.parents)
        contributions.append(
            Contribution(
                org_id=item.org,
                dataset_id=item.dataset,
                units=units(dataset) if units else row.result_size or 0,
                unit_price=dataset.unit_price,
                upstream_bps=dataset.upstream_bps,
                parent_orgs=parents,
            )
        )
    return provenance(row.task_id, spec.kind, spec.requester, contributions)
