"""The provenance record of a settled task (F6): what the ledger paid, and why.

The ledger computes the payments itself (``TaskLedger.settleTask``): every provider -- a
participant other than the requester owning an input -- is paid the usage units it anchored with
its result (at most its input's registered rows) times its input's unit price as it was when
the task was submitted, less the upstream share its input passes to its parents'
owners; with nothing earned the fee is split equally among the providers. A provider the task
completed without (reported absent, ``TaskLedger.reportAbsence``) anchored nothing and is paid
nothing. The requester is never paid for its own inputs (PSI and federated learning alike). This
record repeats that computation from the same on-chain figures; its hash goes on chain with the
settlement.
"""

from __future__ import annotations

from privledger.evm.ledger import Ledger
from privledger.metering.provenance import Contribution, ProvenanceRecord, provenance
from privledger.node.spec import TaskSpec


def settlement_record(ledger: Ledger, spec: TaskSpec, task_id: int) -> ProvenanceRecord:
    """The provenance record of a completed task, from the usage its providers anchored and
    the charges the ledger fixed for its foreign inputs at submission (the unit price then, the
    units capped at the registered rows), as the ledger weighs them; the requester's own inputs
    earn nothing, at the dataset's figures."""
    charges = {charge.dataset_id: charge for charge in ledger.tasks.charges_of(task_id)}
    contributions = []
    for item in spec.inputs:
        dataset_id = bytes.fromhex(item.dataset[2:])
        dataset = ledger.data.get_dataset(dataset_id)
        parents = tuple(ledger.data.get_dataset(parent).owner_org for parent in dataset.parents)
        charge = charges.get(dataset_id)
        contributions.append(
            Contribution(
                org_id=item.org,
                dataset_id=item.dataset,
                units=(
                    ledger.tasks.units_of(task_id, item.org)
                    if charge is None
                    else min(charge.units, charge.max_units)
                ),
                unit_price=dataset.unit_price if charge is None else charge.unit_price,
                upstream_bps=dataset.upstream_bps if charge is None else charge.upstream_bps,
                parent_orgs=parents,
            )
        )
    absent = [org for org in spec.participants if ledger.tasks.anchor_of(task_id, org) == bytes(32)]
    return provenance(task_id, spec.kind, spec.requester, contributions, absent)
