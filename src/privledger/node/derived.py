"""Derived datasets (F6, F25): the rows of this organisation's own input to a set task whose key
is in the intersection this node learned, registered on chain as a dataset of its own whose
parents are every input of the task -- so that a later task on the aligned rows pays its
providers, and through ``upstream_bps`` the owners of the data that aligned them, by provenance.

Only a node that learned the intersection can derive (the requester; the provider too when the
task's output was ``both``); the file is written beside the node's other datasets and never
leaves it. The derived dataset's level is the highest of its parents'.

A pipeline's next step needs the partner's aligned rows too. The partner's owner consents ahead of
time in the grant the set task ran under (its terms' ``derive``): the task's requester then asks
the partner's node (:func:`derive_for_grantee`, a signed peer call), which derives its own aligned
rows in the name of the owner that issued the grant and grants them to the requester under the
same terms, naming that grant as their parent (``parent_grant`` in the terms, ``parentGrant`` in
the GrantRegistry). The derived grant expires with its parent at the latest and shares the
parent's uses: the registry counts each of its uses against the parent's too, and refuses a task
under it once the parent is revoked, expired or used up -- as every provider does again before it
reads data (:func:`privledger.node.grants.lapse`); revoking the parent through the node revokes
it too. Without that consent, or for anyone
but the task's requester, the node refuses.
"""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlmodel import Session, select

from privledger.evm.contracts import TaskStatus
from privledger.evm.errors import ChainRevert
from privledger.evm.ledger import Ledger
from privledger.node import results
from privledger.node.context import NodeContext
from privledger.node.datasets import (
    CSV_ENCODING,
    PARQUET_SUFFIXES,
    ingest,
    register_stored,
    stored_path,
)
from privledger.node.endpoints import usable_endpoint
from privledger.node.grants import (
    consumed_grants,
    grant_dataset,
    lapse,
    terms_of,
)
from privledger.node.keystore import KeystoreError
from privledger.node.peer_auth import PEER_ROUTES, PEER_SCHEME, signed_headers
from privledger.node.spec import TaskSpec, parse_canonical
from privledger.store.events import events_named
from privledger.store.models import LocalDataset, LocalTask
from privledger.wire.assets import DerivedOut

# set tasks whose result is a list of keys of the parties' inputs
ALIGNING = frozenset({"ecdh", "kkrt", "rr22", "intersection3", "difference"})
MAX_ALIGNED_KEYS = 10_000_000


class DeriveError(ValueError):
    """The task left nothing this node may derive a dataset from."""


class NotTakenPart(DeriveError):
    """This node holds no record of the task."""


class PartnerUnreachable(DeriveError):
    """The partner's node did not answer."""


class NotConsented(DeriveError):
    """The owner's grant does not let the caller have this node's aligned rows derived."""


_DERIVING = threading.Lock()  # one derivation at a time: a repeated request finds the first


def derive_aligned(
    node: NodeContext,
    signer: Ledger,
    *,
    task_id: int,
    name: str,
    unit_price: int,
    upstream_bps: int,
) -> LocalDataset:
    """Register the rows of this node's input to set task ``task_id`` whose key is in the
    result this node learned; ``signer`` is the data owner's ledger."""
    row, spec = _task_record(node, task_id)
    mine = next((item for item in spec.inputs if item.org == node.org_id), None)
    if spec.protocol not in ALIGNING or getattr(spec, "output", None) == "size":
        raise DeriveError(f"task {task_id} ({spec.protocol}) released no keys to align rows by")
    if mine is None or row.result_path is None:
        raise DeriveError(f"this node learned no result of task {task_id} with an input of its own")
    status = node.ledger.tasks.get_task(task_id).status
    if status not in (TaskStatus.COMPLETED, TaskStatus.SETTLED):
        raise DeriveError(f"task {task_id} is {status.name.lower()}, not completed")
    with Session(node.engine) as session:
        own = session.get(LocalDataset, mine.dataset.lower())
    if own is None:
        raise DeriveError(f"dataset {mine.dataset} is not on this node")
    keys = set(results.read(Path(row.result_path), limit=MAX_ALIGNED_KEYS))
    source = Path(own.path)
    stored = stored_path(node.settings.data_dir, name, source.suffix)
    description = ingest(_aligned_rows(source, mine.column, keys), stored)
    parents = list(dict.fromkeys(bytes.fromhex(item.dataset[2:]) for item in spec.inputs))
    level = max(node.ledger.data.get_dataset(parent).level for parent in parents)
    derived = register_stored(
        signer,
        description,
        stored,
        name=name,
        level=level,
        unit_price=unit_price,
        parents=parents,
        upstream_bps=upstream_bps,
    )
    with Session(node.engine) as session:
        session.add(derived)
        session.commit()
        session.refresh(derived)
    return derived


def derive_for_grantee(node: NodeContext, *, task_id: int, caller_org: int) -> DerivedOut:
    """This node's aligned rows of set task ``task_id``, registered as a derived dataset and
    granted to the task's requester ``caller_org`` -- as the grant the task consumed for this
    node's input allows (its terms' ``derive``), signed by that grant's grantor. Asking again
    answers the same dataset and grant."""
    _, spec = _task_record(node, task_id)
    if spec.requester != caller_org:
        raise NotConsented(f"only task {task_id}'s requester may ask for its derived datasets")
    mine = next((item for item in spec.inputs if item.org == node.org_id), None)
    if mine is None:
        raise DeriveError(f"this node had no input to task {task_id}")
    dataset = bytes.fromhex(mine.dataset[2:])
    grant = next((g for g in consumed_grants(node, task_id) if g.dataset_id == dataset), None)
    terms = None if grant is None else terms_of(node, grant)
    if grant is None or terms is None or terms.derive is None:
        raise NotConsented(f"the grant task {task_id} used on {mine.dataset} allows no derived use")
    now = node.ledger.client.latest_timestamp()
    if lapse(node, grant, now) is not None or grant.grantee_org != caller_org:
        raise NotConsented(f"the grant on {mine.dataset} is revoked or expired")
    left = grant.max_uses - grant.used  # the registry counts the derived grant's uses here too
    if left <= 0:
        raise NotConsented(f"the grant on {mine.dataset} has no use left for derived rows")
    try:
        signer = node.ledger_for(grant.grantor)
    except KeystoreError as exc:
        raise NotConsented(f"the grantor {grant.grantor} signs elsewhere: {exc}") from exc
    with _DERIVING:
        derived = _derive_once(node, signer, task_id, mine.dataset, terms.derive.upstream_bps)
        granted = _grant_to(node, derived.dataset_id, caller_org)
        if granted is None:
            granted = grant_dataset(
                signer,
                dataset=derived.dataset_id,
                grantee_org=caller_org,
                terms=terms.model_copy(
                    update={"derive": None, "parent_grant": "0x" + grant.grant_id.hex()}
                ),
                expires_in_s=grant.expiry - now,
                until=grant.expiry,
                max_uses=left,
            )
    return derived_out(node.org_id, derived, granted)


def derive_own(node: NodeContext, signer: Ledger, *, task_id: int, upstream_bps: int) -> DerivedOut:
    """The requester's side of :func:`derive_for_grantee`: this node's aligned rows of its own
    set task, registered in ``signer``'s name at its input's unit price (once: asking again
    answers the same dataset)."""
    _, spec = _task_record(node, task_id)
    mine = next((item for item in spec.inputs if item.org == node.org_id), None)
    if mine is None or spec.requester != node.org_id:
        raise DeriveError(f"task {task_id} is not this organisation's, with an input of its own")
    with _DERIVING:
        derived = _derive_once(node, signer, task_id, mine.dataset, upstream_bps)
    return derived_out(node.org_id, derived, None)


def derived_out(org_id: int, derived: LocalDataset, grant_id: bytes | None) -> DerivedOut:
    return DerivedOut(
        org_id=org_id,
        dataset_id=derived.dataset_id,
        name=derived.name,
        columns=derived.columns,
        row_count=derived.row_count,
        grant_id=None if grant_id is None else "0x" + grant_id.hex(),
    )


def _task_record(node: NodeContext, task_id: int) -> tuple[LocalTask, TaskSpec]:
    """This node's record of task ``task_id`` and its spec, or :class:`NotTakenPart`."""
    with Session(node.engine) as session:
        row = session.get(LocalTask, task_id)
    if row is None or row.spec_json is None:
        raise NotTakenPart(f"task {task_id} on this node")
    return row, parse_canonical(row.spec_json.encode())


def _derive_once(
    node: NodeContext, signer: Ledger, task_id: int, dataset_id: str, upstream_bps: int
) -> LocalDataset:
    """The dataset derived from this node's input ``dataset_id`` to task ``task_id``: registered
    now, or found under its name (``<input's name>.t<task>``) when it was before."""
    with Session(node.engine) as session:
        own = session.get(LocalDataset, dataset_id.lower())
        if own is None:
            raise DeriveError(f"dataset {dataset_id} is not on this node")
        name = f"{own.name}.t{task_id}"
        known = session.exec(select(LocalDataset).where(LocalDataset.name == name)).first()
    if known is not None:
        return known
    return derive_aligned(
        node,
        signer,
        task_id=task_id,
        name=name,
        unit_price=own.unit_price,
        upstream_bps=upstream_bps,
    )


def ask_partner(node: NodeContext, task_id: int, org: int) -> DerivedOut:
    """Ask ``org``'s node for its derived dataset of task ``task_id`` (a call signed for this
    organisation, the task's requester); a refusal is a :class:`DeriveError` naming its answer."""
    endpoint = usable_endpoint(node.ledger.orgs.get_org(org).endpoint)
    route = f"{PEER_ROUTES}tasks/{task_id}/derived"
    headers = signed_headers(node.account, PEER_SCHEME, route, node.org_id, org, b"")
    try:
        response = node.http.post(f"{endpoint}{route}", headers=headers)
    except httpx.HTTPError as exc:
        raise PartnerUnreachable(f"organisation {org}'s node: {exc}") from exc
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise DeriveError(f"organisation {org} refused: {message}")
    try:
        derived = DerivedOut.model_validate(response.json())
    except ValueError as exc:
        raise DeriveError(f"organisation {org} answered no derived dataset: {exc}") from exc
    _check_on_chain(node, task_id, org, derived)
    return derived


def _check_on_chain(node: NodeContext, task_id: int, org: int, derived: DerivedOut) -> None:
    """A partner's answer holds only as the chain confirms it: a dataset of ``org`` whose parents
    are the task's inputs, granted to this organisation by a live grant (neither revoked nor
    expired) on that dataset."""
    task = node.ledger.tasks.get_task(task_id)
    try:
        record = node.ledger.data.get_dataset(bytes.fromhex(derived.dataset_id[2:]))
        grant = (
            None
            if derived.grant_id is None
            else node.ledger.grants.get_grant(bytes.fromhex(derived.grant_id[2:]))
        )
    except (ValueError, ChainRevert) as exc:
        raise DeriveError(f"organisation {org}'s derived dataset is not on chain: {exc}") from exc
    granted = (
        grant is not None
        and grant.dataset_id.hex() == derived.dataset_id[2:].lower()
        and grant.grantee_org == node.org_id
        and not grant.revoked
        and grant.expiry > node.ledger.client.latest_timestamp()
    )
    if record.owner_org != org or sorted(record.parents) != sorted(task.inputs) or not granted:
        raise DeriveError(
            f"organisation {org}'s answer is not a dataset derived from task {task_id} and "
            "granted to this organisation by a live grant, as the chain has it"
        )


def _grant_to(node: NodeContext, dataset_id: str, grantee: int) -> bytes | None:
    """A grant of ``dataset_id`` to ``grantee`` already issued, if any."""
    node.indexer.sync_for("GrantRegistry", "GrantIssued")
    with Session(node.engine) as session:
        issued = events_named(session, ["GrantIssued"], dataset_id=dataset_id.lower())
    for event in issued:
        if int(event.args["granteeOrg"]) == grantee:
            return bytes.fromhex(event.args["grantId"][2:])
    return None


def _aligned_rows(path: Path, column: str, keys: set[str]) -> io.BytesIO:
    """The file's rows whose ``column`` is one of ``keys``, in its format (CSV or Parquet)."""
    sink = io.BytesIO()
    if path.suffix.lower() in PARQUET_SUFFIXES:
        table = pq.read_table(path)
        values = pc.cast(table[column], pa.string())
        pq.write_table(table.filter(pc.is_in(values, value_set=pa.array(sorted(keys)))), sink)
    else:
        with path.open(encoding=CSV_ENCODING, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            at = [name.strip() for name in header].index(column)
            text = io.TextIOWrapper(sink, "utf-8", newline="", write_through=True)
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(line for line in reader if line[at] in keys)
            text.detach()
    sink.seek(0)
    return sink
