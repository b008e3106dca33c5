"""The chain explorer's pages (auditors only): overview, search, blocks, transactions, accounts,
organisations, datasets, settlements, log batches and the provenance graph; JSON twins under
/explorer/api. Everything is read from the node's index, synced with the chain first."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

from eth_utils.address import is_address, to_checksum_address
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlmodel import Session

from privledger.api.deps import NodeDep
from privledger.evm.contracts import Role
from privledger.evm.indexer import REF_KINDS
from privledger.node.context import NodeContext
from privledger.store.models import ChainEvent

from . import batches, chain, datasets, refs, settlements
from .directory import AccountEntry, Directory, OrgEntry
from .graph import render_svg
from .provenance import provenance_graph
from .search import search
from .web import (
    PREFIX,
    Auditor,
    BadInput,
    ExplorerRoute,
    PageNotFound,
    explorer_root,
    hex32,
    page,
    page_number,
    paged,
    whole_number,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ExplorerRoute)
Cursor = Annotated[str, Query(max_length=40)]
PageText = Annotated[str, Query(alias="page", max_length=20)]
OVERVIEW_ROWS = 8
ORG_ACTIVITY = 30


@contextmanager
def indexed(node: NodeContext) -> Iterator[tuple[Session, Directory]]:
    """A session on the index, synced with the chain, and the directory of orgs and accounts."""
    node.indexer.sync()
    with Session(node.engine) as session:
        yield session, Directory.load(session)


def _address(text: str) -> str:
    if not is_address(text.strip()):
        raise BadInput(f"{text[:80]!r} is not an address: 0x followed by 40 hex digits")
    return to_checksum_address(text.strip())


def _common(node: NodeContext, directory: Directory) -> dict[str, Any]:
    contracts = {to_checksum_address(a): n for n, a in node.indexer.deployment.addresses.items()}
    return {"directory": directory, "contracts": contracts, "ref_kinds": REF_KINDS}


# --- overview and search ----------------------------------------------------------------------
@router.get("")
def overview(request: Request, node: NodeDep, auditor: Auditor) -> Response:
    with indexed(node) as (session, directory):
        blocks, _ = chain.blocks_page(session, None, OVERVIEW_ROWS)
        txs, _ = chain.txs_page(session, None, limit=OVERVIEW_ROWS)
        context = {
            **_common(node, directory),
            "totals": chain.totals(session),
            "blocks": blocks,
            "txs": txs,
        }
        return page(request, "overview.html", context, viewer=auditor)


@router.get("/search")
def search_page(
    request: Request, node: NodeDep, auditor: Auditor, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    with indexed(node) as (session, directory):
        matches = search(session, directory, q, explorer_root(request)) if q.strip() else []
    if len(matches) == 1:
        return RedirectResponse(matches[0].url, status_code=303)
    status = 404 if q.strip() and not matches else 200
    context = {"q": q, "matches": matches}
    return page(request, "search.html", context, viewer=auditor, status_code=status)


@router.get("/api/search")
def search_json(
    request: Request,
    node: NodeDep,
    _auditor: Auditor,
    q: Annotated[str, Query(max_length=200)] = "",
) -> dict[str, Any]:
    if not q.strip():
        raise BadInput("give something to search for in q")
    with indexed(node) as (session, directory):
        found = search(session, directory, q, explorer_root(request))
        return {"q": q, "matches": [m.__dict__ for m in found]}


# --- blocks and transactions ------------------------------------------------------------------
def _blocks(node: NodeContext, before: str) -> dict[str, Any]:
    with indexed(node) as (session, _):
        rows, cursor = chain.blocks_page(session, chain.block_cursor(before))
        return {"blocks": rows, "next": cursor, "before": before}


@router.get("/blocks")
def blocks_page(request: Request, node: NodeDep, auditor: Auditor, before: Cursor = "") -> Response:
    return page(request, "blocks.html", _blocks(node, before), viewer=auditor)


@router.get("/api/blocks")
def blocks_json(node: NodeDep, _auditor: Auditor, before: Cursor = "") -> dict[str, Any]:
    found = _blocks(node, before)
    return {"blocks": [b.model_dump() for b in found["blocks"]], "next": found["next"]}


def _block(node: NodeContext, number: str) -> dict[str, Any]:
    with indexed(node) as (session, directory):
        found = chain.block(session, whole_number(number, "block number"))
        if found is None:
            raise PageNotFound(f"block {number} is not in the index")
        txs = chain.block_txs(session, found.number)
        # the neighbours the page links to: only blocks the index holds
        older = chain.block(session, found.number - 1) is not None
        newer = chain.block(session, found.number + 1) is not None
        return {
            **_common(node, directory),
            "block": found,
            "txs": txs,
            "older": older,
            "newer": newer,
        }


@router.get("/blocks/{number}")
def block_page(request: Request, number: str, node: NodeDep, auditor: Auditor) -> Response:
    return page(request, "block.html", _block(node, number), viewer=auditor)


@router.get("/api/blocks/{number}")
def block_json(number: str, node: NodeDep, _auditor: Auditor) -> dict[str, Any]:
    found = _block(node, number)
    return {**found["block"].model_dump(), "transactions": [t.hash for t in found["txs"]]}


def _txs(node: NodeContext, before: str, sender: str | None = None) -> dict[str, Any]:
    with indexed(node) as (session, directory):
        rows, cursor = chain.txs_page(session, chain.tx_cursor(before), sender=sender)
        return {**_common(node, directory), "txs": rows, "next": cursor, "before": before}


@router.get("/txs")
def txs_page(request: Request, node: NodeDep, auditor: Auditor, before: Cursor = "") -> Response:
    return page(request, "txs.html", _txs(node, before), viewer=auditor)


@router.get("/api/txs")
def txs_json(node: NodeDep, _auditor: Auditor, before: Cursor = "") -> dict[str, Any]:
    found = _txs(node, before)
    return {"transactions": [t.model_dump() for t in found["txs"]], "next": found["next"]}


def _tx(node: NodeContext, tx_hash: str) -> dict[str, Any]:
    value = hex32(tx_hash, "transaction hash")
    with indexed(node) as (session, directory):
        found = chain.tx(session, value)
        if found is None:
            raise PageNotFound(f"transaction {value} is not in the index")
        events = chain.tx_events(session, value)
        return {**_common(node, directory), "tx": found, "events": events}


@router.get("/txs/{tx_hash}")
def tx_page(request: Request, tx_hash: str, node: NodeDep, auditor: Auditor) -> Response:
    return page(request, "tx.html", _tx(node, tx_hash), viewer=auditor)


@router.get("/api/txs/{tx_hash}")
def tx_json(tx_hash: str, node: NodeDep, _auditor: Auditor) -> dict[str, Any]:
    found = _tx(node, tx_hash)
    return {
        **found["tx"].model_dump(),
        "events": [
            {"log_index": e.log_index, "contract": e.contract, "event": e.event, "args": e.args}
            for e in found["events"]
        ],
    }


# --- accounts and organisations ---------------------------------------------------------------
def _account_json(entry: AccountEntry) -> dict[str, Any]:
    """An account with its roles by name (as the pages show them), not as a bit mask."""
    names = [role.name.lower() for role in Role if role & entry.roles and role.name]
    return {"address": entry.address, "org_id": entry.org_id, "roles": names}


def _event_json(event: ChainEvent) -> dict[str, Any]:
    return {
        "block_number": event.block_number,
        "tx_hash": event.tx_hash,
        "contract": event.contract,
        "event": event.event,
        "args": event.args,
    }


def _accounts(node: NodeContext) -> dict[str, Any]:
    with indexed(node) as (_, directory):
        accounts = sorted(directory.accounts.values(), key=lambda a: (a.org_id, a.address))
        return {"directory": directory, "accounts": accounts}


@router.get("/accounts")
def accounts_page(request: Request, node: NodeDep, auditor: Auditor) -> Response:
    return page(request, "accounts.html", _accounts(node), viewer=auditor)


@router.get("/api/accounts")
def accounts_json(node: NodeDep, _auditor: Auditor) -> dict[str, Any]:
    return {"accounts": [_account_json(entry) for entry in _accounts(node)["accounts"]]}


def _account(node: NodeContext, address: str, before: str) -> dict[str, Any]:
    checksum = _address(address)
    with indexed(node) as (session, directory):
        if checksum not in directory.accounts and not chain.touched(session, checksum):
            raise PageNotFound(f"account {checksum} has no role and no transaction on the ledger")
        sent, cursor = chain.txs_page(session, chain.tx_cursor(before), sender=checksum)
        return {
            **_common(node, directory),
            "address": checksum,
            "entry": directory.accounts.get(checksum),
            "txs": sent,
            "next": cursor,
            "before": before,
            "sent": chain.sent_count(session, checksum),
        }


@router.get("/accounts/{address}")
def account_page(
    request: Request, address: str, node: NodeDep, auditor: Auditor, before: Cursor = ""
) -> Response:
    return page(request, "account.html", _account(node, address, before), viewer=auditor)


@router.get("/api/accounts/{address}")
def account_json(
    address: str, node: NodeDep, _auditor: Auditor, before: Cursor = ""
) -> dict[str, Any]:
    found = _account(node, address, before)
    entry = found["entry"]
    return {
        "address": found["address"],
        "org_id": entry.org_id if entry is not None else None,
        "roles": _account_json(entry)["roles"] if entry is not None else [],
        "sent": found["sent"],
        "txs": [tx.model_dump() for tx in found["txs"]],
        "next": found["next"],
    }


def _orgs(node: NodeContext) -> dict[str, Any]:
    with indexed(node) as (_, directory):
        return {"directory": directory, "orgs": sorted(directory.orgs.values(), key=_org_id)}


def _org_id(org: OrgEntry) -> int:
    return org.org_id


@router.get("/orgs")
def orgs_page(request: Request, node: NodeDep, auditor: Auditor) -> Response:
    return page(request, "orgs.html", _orgs(node), viewer=auditor)


@router.get("/api/orgs")
def orgs_json(node: NodeDep, _auditor: Auditor) -> dict[str, Any]:
    return {"orgs": [dataclasses.asdict(org) for org in _orgs(node)["orgs"]]}


def _org(node: NodeContext, org_id: str) -> dict[str, Any]:
    number = whole_number(org_id, "organisation id")
    with indexed(node) as (session, directory):
        org = directory.orgs.get(number)
        if org is None:
            raise PageNotFound(f"organisation {number} is not registered")
        return {
            **_common(node, directory),
            "org": org,
            "members": directory.members(number),
            "balance": node.ledger.metering.balance_of(number),
            "activity": refs.events_about(session, "org", [str(number)], newest=ORG_ACTIVITY),
        }


@router.get("/orgs/{org_id}")
def org_page(request: Request, org_id: str, node: NodeDep, auditor: Auditor) -> Response:
    return page(request, "org.html", _org(node, org_id), viewer=auditor)


@router.get("/api/orgs/{org_id}")
def org_json(org_id: str, node: NodeDep, _auditor: Auditor) -> dict[str, Any]:
    found = _org(node, org_id)
    return {
        **dataclasses.asdict(found["org"]),
        "members": [_account_json(member) for member in found["members"]],
        "balance_wei": found["balance"],
        "activity": [_event_json(event) for event in found["activity"]],
    }


# --- datasets ---------------------------------------------------------------------------------
RowsOf = Callable[..., tuple[Sequence[Any], int]]


def _listing(
    node: NodeContext, page_text: str, rows_of: RowsOf, size: int
) -> tuple[dict[str, Any], Directory]:
    """The page ``page_text`` of a listing, whose rows ``rows_of(session, directory, offset=)``
    reads from the index; with the directory it was read with."""
    page_no = page_number(page_text)
    with indexed(node) as (session, directory):
        rows, total = rows_of(session, directory, offset=(page_no - 1) * size)
    return paged(page_no, rows, total, size), directory


def _datasets(node: NodeContext, page_text: str) -> dict[str, Any]:
    return _listing(node, page_text, datasets.dataset_rows, datasets.PAGE_SIZE)[0]


@router.get("/datasets")
def datasets_page(
    request: Request, node: NodeDep, auditor: Auditor, page_text: PageText = ""
) -> Response:
    return page(request, "datasets.html", _datasets(node, page_text), viewer=auditor)


@router.get("/api/datasets")
def datasets_json(node: NodeDep, _auditor: Auditor, page_text: PageText = "") -> dict[str, Any]:
    found = _datasets(node, page_text)
    return {**found, "rows": [r.__dict__ for r in found["rows"]]}


def _dataset(node: NodeContext, dataset_id: str) -> dict[str, Any]:
    value = hex32(dataset_id, "dataset id")
    with indexed(node) as (session, directory):
        detail = datasets.dataset_detail(session, directory, value)
        if detail is None:
            raise PageNotFound(f"dataset {value} is not registered")
        return {**_common(node, directory), "d": detail}


@router.get("/datasets/{dataset_id}")
def dataset_page(request: Request, dataset_id: str, node: NodeDep, auditor: Auditor) -> Response:
    return page(request, "dataset.html", _dataset(node, dataset_id), viewer=auditor)


@router.get("/api/datasets/{dataset_id}")
def dataset_json(dataset_id: str, node: NodeDep, _auditor: Auditor) -> dict[str, Any]:
    return _dataset(node, dataset_id)["d"].as_json()  # type: ignore[no-any-return]


# --- settlements and log batches --------------------------------------------------------------
def _settlements(node: NodeContext, page_text: str) -> dict[str, Any]:
    listing, directory = _listing(
        node, page_text, settlements.settlement_rows, settlements.PAGE_SIZE
    )
    return {**listing, "balances": settlements.balances(node, directory)}


@router.get("/settlements")
def settlements_page(
    request: Request, node: NodeDep, auditor: Auditor, page_text: PageText = ""
) -> Response:
    return page(request, "settlements.html", _settlements(node, page_text), viewer=auditor)


@router.get("/api/settlements")
def settlements_json(node: NodeDep, _auditor: Auditor, page_text: PageText = "") -> dict[str, Any]:
    found = _settlements(node, page_text)
    return {
        **found,
        "rows": [dataclasses.asdict(row) for row in found["rows"]],
        "balances": [dataclasses.asdict(balance) for balance in found["balances"]],
    }


def _batches(node: NodeContext, page_text: str) -> dict[str, Any]:
    return _listing(node, page_text, batches.batch_rows, batches.PAGE_SIZE)[0]


@router.get("/batches")
def batches_page(
    request: Request, node: NodeDep, auditor: Auditor, page_text: PageText = ""
) -> Response:
    return page(request, "batches.html", _batches(node, page_text), viewer=auditor)


@router.get("/api/batches")
def batches_json(node: NodeDep, _auditor: Auditor, page_text: PageText = "") -> dict[str, Any]:
    found = _batches(node, page_text)
    return {**found, "rows": [dataclasses.asdict(row) for row in found["rows"]]}


def _batch(node: NodeContext, batch_id: str) -> batches.BatchRow:
    number = whole_number(batch_id, "batch id")
    with indexed(node) as (session, directory):
        found = batches.batch(session, directory, number)
    if found is None:
        raise PageNotFound(f"log batch {number} is not anchored")
    return found


@router.get("/batches/{batch_id}")
def batch_page(request: Request, batch_id: str, node: NodeDep, auditor: Auditor) -> Response:
    context = {"b": _batch(node, batch_id), "form": {"digest": "", "proof": ""}, "verdict": None}
    return page(request, "batch.html", context, viewer=auditor)


@router.get("/api/batches/{batch_id}")
def batch_json(batch_id: str, node: NodeDep, _auditor: Auditor) -> dict[str, Any]:
    return dataclasses.asdict(_batch(node, batch_id))


@router.post("/batches/{batch_id}")
def batch_proof(
    request: Request,
    batch_id: str,
    node: NodeDep,
    auditor: Auditor,
    digest: Annotated[str, Form(max_length=100)] = "",
    proof: Annotated[str, Form(max_length=6_000)] = "",
) -> Response:
    """Checks a log entry's Merkle proof against the batch with BatchAnchor.verify."""
    found = _batch(node, batch_id)
    context: dict[str, Any] = {"b": found, "form": {"digest": digest, "proof": proof}}
    try:
        context["verdict"] = batches.check_proof(node, found.batch_id, digest, proof)
        context["error"] = None
        status = 200
    except BadInput as exc:
        context["verdict"], context["error"], status = None, exc.message, 400
    return page(request, "batch.html", context, viewer=auditor, status_code=status)


# --- provenance -------------------------------------------------------------------------------
def _provenance(request: Request, node: NodeContext, task: str, dataset: str) -> dict[str, Any]:
    task_id = whole_number(task, "task id") if task.strip() else None
    dataset_id = hex32(dataset, "dataset id") if dataset.strip() else None
    with indexed(node) as (session, directory):
        if task_id is not None and not refs.exists(session, "task", str(task_id)):
            raise PageNotFound(f"task {task_id} is not on the ledger")
        if dataset_id is not None and datasets.registration(session, dataset_id) is None:
            raise PageNotFound(f"dataset {dataset_id} is not registered")
        graph = provenance_graph(
            session,
            directory,
            root=explorer_root(request),
            task_id=task_id,
            dataset_id=dataset_id,
        )
    return {"graph": graph, "task": task_id, "dataset": dataset_id}


Focus = Annotated[str, Query(max_length=80)]


@router.get("/provenance")
def provenance_page(
    request: Request, node: NodeDep, auditor: Auditor, task: Focus = "", dataset: Focus = ""
) -> Response:
    found = _provenance(request, node, task, dataset)
    context = {**found, "svg": render_svg(found["graph"])}
    return page(request, "provenance.html", context, viewer=auditor)


@router.get("/api/provenance")
def provenance_json(
    request: Request, node: NodeDep, _auditor: Auditor, task: Focus = "", dataset: Focus = ""
) -> dict[str, Any]:
    return _provenance(request, node, task, dataset)["graph"].as_json()  # type: ignore[no-any-return]
