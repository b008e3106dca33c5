"""The provenance record a requester settles a completed task by (F6)."""

from __future__ import annotations

import json
from pathlib import Path

from privledger.evm.ledger import Ledger
from privledger.metering.provenance import Contribution, ProvenanceRecord, provenance
from privledger.node.spec import TaskSpec
from privledger.protocols.fl.contribution import fee_shares
from privledger.store.models import LocalTask


def settlement_record(ledger: Ledger, spec: TaskSpec, row: LocalTask) -> ProvenanceRecord:
    """Vertical FL pays by measured contribution; everything else by usage."""
    if spec.protocol == "vertical-lr":
        return contribution_record(spec, row)
    return usage_record(ledger, spec, row)


def contribution_record(spec: TaskSpec, row: LocalTask) -> ProvenanceRecord:
    """Federated learning: the fee follows each party's Shapley contribution to the model."""
    if row.result_path is None:
        raise RuntimeError(f"task {row.task_id} has no local result to settle from")
    (part,) = json.loads(Path(row.result_path).read_text())
    measured = json.loads(part).get("contributions", {})
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


def usage_record(ledger: Ledger, spec: TaskSpec, row: LocalTask) -> ProvenanceRecord:
    """Providers are paid by the rows they contributed × their unit price."""
    contributions = []
    for item in spec.inputs:
        dataset = ledger.data.get_dataset(bytes.fromhex(item.dataset[2:]))
        parents = tuple(ledger.data.get_dataset(parent).owner_org for parent in dataset.parents)
        contributions.append(
            Contribution(
                org_id=item.org,
                dataset_id=item.dataset,
                units=row.result_size or 0,
                unit_price=dataset.unit_price,
                upstream_bps=dataset.upstream_bps,
                parent_orgs=parents,
            )
        )
    return provenance(row.task_id, spec.kind, spec.requester, contributions)
