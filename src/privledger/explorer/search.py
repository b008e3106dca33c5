"""One search box for the explorer: a task, block or org number, a transaction, block, dataset or
grant hash, an account address, or an organisation's name."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from eth_utils.address import to_checksum_address
from sqlmodel import Session

from privledger.store.models import ChainTx
from privledger.wire.numerals import ascii_number

from . import chain, refs
from .directory import Directory
from .web import BadInput

MAX_QUERY = 100
HASH = re.compile(r"0x[0-9a-f]{64}")
ADDRESS = re.compile(r"0x[0-9a-f]{40}")
NAME = re.compile(r"[\w .\-]{1,64}")


@dataclass(frozen=True)
class Match:
    kind: str
    label: str
    url: str  # the page's path, below the explorer's root


def _number(session: Session, directory: Directory, number: int) -> list[Match]:
    text = str(number)
    found = []
    if refs.exists(session, "task", text, "TaskSubmitted"):
        found.append(Match("task", f"Task #{number}", f"/tasks/{number}"))
    if chain.block(session, number) is not None:
        found.append(Match("block", f"Block {number}", f"/blocks/{number}"))
    if number in directory.orgs:
        name = directory.org_name(number)
        found.append(Match("org", f"Organisation {number} ({name})", f"/orgs/{number}"))
    if refs.exists(session, "batch", text, "BatchAnchored"):
        found.append(Match("batch", f"Log batch {number}", f"/batches/{number}"))
    return found


def _hash(session: Session, value: str) -> list[Match]:
    found = []
    if session.get(ChainTx, value) is not None:
        found.append(Match("tx", f"Transaction {value}", f"/txs/{value}"))
    block = chain.block_by_hash(session, value)
    if block is not None:
        found.append(Match("block", f"Block {block.number}", f"/blocks/{block.number}"))
    if refs.exists(session, "dataset", value, "DatasetRegistered"):
        found.append(Match("dataset", f"Dataset {value}", f"/datasets/{value}"))
    issued = refs.events_about(session, "grant", [value], ["GrantIssued"])
    if issued:
        dataset = str(issued[0].args["datasetId"])
        found.append(Match("grant", f"Grant {value}", f"/datasets/{dataset}#grants"))
    return found


def _address(session: Session, directory: Directory, value: str) -> list[Match]:
    address = to_checksum_address(value)
    if address in directory.accounts or chain.touched(session, address):
        return [Match("account", f"Account {address}", f"/accounts/{address}")]
    return []


def search(session: Session, directory: Directory, query: str, root: str) -> list[Match]:
    """Everything ``query`` names on the ledger, each with the URL of its page in the explorer
    at ``root``; malformed queries are a ``BadInput``."""
    return [replace(match, url=root + match.url) for match in _search(session, directory, query)]


def _search(session: Session, directory: Directory, query: str) -> list[Match]:
    text = query.strip()
    if len(text) > MAX_QUERY:
        raise BadInput(f"a search is at most {MAX_QUERY} characters")
    lowered = text.lower().removeprefix("#")
    if lowered.isascii() and lowered.isdigit():  # not "²": isdigit() alone takes it, int() not
        number = ascii_number(lowered)
        if number is None:
            raise BadInput(f"{text!r} is too large to be a task, block, org or batch number")
        return _number(session, directory, number)
    if lowered.startswith("0x"):
        if HASH.fullmatch(lowered):
            return _hash(session, lowered)
        if ADDRESS.fullmatch(lowered):
            return _address(session, directory, lowered)
        raise BadInput(
            f"{text!r} is neither a hash (0x + 64 hex digits) nor an address (0x + 40 hex digits)"
        )
    if not NAME.fullmatch(text):
        raise BadInput(
            f"{text!r} is not something to search for: a task/block/org number, a hash, "
            "an address or an organisation's name"
        )
    wanted = text.lower()
    return [
        Match("org", f"Organisation {org.org_id} ({org.name})", f"/orgs/{org.org_id}")
        for org in sorted(directory.orgs.values(), key=lambda o: o.org_id)
        if wanted in org.name.lower()
    ]
