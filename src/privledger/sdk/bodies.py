"""Task bodies (the API's ``TaskIn``, camelCase) for :meth:`NodeClient.submit
<privledger.sdk.client.NodeClient.submit>`: a two-party PSI, a keyword-PIR query, joint
statistics, a multi-lending check. The node checks each against its task specs; these only
spell the common ones without a JSON file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

TaskBody = dict[str, object]
"""A task as the API's ``POST /tasks`` takes it (JSON)."""
StatsOp = Literal["count", "sum", "mean", "variance", "histogram"]
STATS_OPS: tuple[StatsOp, ...] = ("count", "sum", "mean", "variance", "histogram")


def psi_task(
    mine: str,
    theirs: str,
    *,
    column: str,
    their_column: str | None = None,
    protocol: str = "ecdh",
    output: Literal["requester", "both", "size"] = "requester",
    fee_wei: int = 0,
) -> TaskBody:
    """The task body of a two-party PSI: ``column`` of your dataset ``mine`` against
    ``their_column`` (default: the same name) of the partner's ``theirs``; ``output`` says who
    learns the intersection: you, both, or both only its size (ECDH only)."""
    return {
        "kind": "psi",
        "protocol": protocol,
        "inputs": [
            {"dataset": mine, "column": column},
            {"dataset": theirs, "column": their_column or column},
        ],
        "output": output,
        "feeWei": fee_wei,
    }


def pir_task(
    dataset: str,
    *,
    column: str,
    value_column: str,
    keys_dataset: str,
    keys_column: str | None = None,
    mode: Literal["pir", "bucket"] = "pir",
    fee_wei: int = 0,
) -> TaskBody:
    """The task body of a keyword-PIR query: the keys in ``keys_column`` of your own
    ``keys_dataset`` looked up in ``column`` of the holder's ``dataset``, returning
    ``value_column``. ``mode="bucket"`` is the cheaper k-anonymous lookup (the holder learns a
    bucket of ~k keys), not full query privacy."""
    return {
        "kind": "pir",
        "protocol": "simplepir" if mode == "pir" else "bucket",
        "inputs": [
            {"dataset": keys_dataset, "column": keys_column or column},
            {"dataset": dataset, "column": column, "valueColumn": value_column},
        ],
        "feeWei": fee_wei,
    }


def stats_task(
    datasets: Sequence[str],
    *,
    column: str | Sequence[str],
    dealer: int,
    histogram_edges: Sequence[float] | None = None,
    frac_bits: int = 16,
    fee_wei: int = 0,
) -> TaskBody:
    """The task body of joint statistics over one numeric column of each dataset (one of them
    yours); ``column`` names it for all, or one per dataset. ``dealer`` is an organisation
    holding none of the inputs (it deals the correlated randomness). ``frac_bits`` trades range
    for precision: every party's sum of squares times 2^frac_bits must stay below 2^63 / N."""
    columns = [column] * len(datasets) if isinstance(column, str) else list(column)
    if len(columns) != len(datasets):
        raise ValueError(f"{len(columns)} columns for {len(datasets)} datasets")
    body: TaskBody = {
        "kind": "stats",
        "protocol": "joint-stats",
        "inputs": [{"dataset": d, "column": c} for d, c in zip(datasets, columns, strict=True)],
        "dealer": dealer,
        "fracBits": frac_bits,
        "feeWei": fee_wei,
    }
    if histogram_edges is not None:
        body["histogramEdges"] = [float(edge) for edge in histogram_edges]
    return body


def lending_task(
    query_dataset: str,
    *,
    banks: Sequence[str],
    dealer: int,
    customer_column: str = "customer",
    limit_column: str | None = None,
    bank_customer_column: str = "customer",
    amount_column: str = "amount",
    fee_wei: int = 0,
) -> TaskBody:
    """The task body of a multi-lending check: your ``query_dataset`` holds the customer (one
    row) and, with ``limit_column``, the limit -- then only "exceeds the limit?" is answered,
    else the total of the customer's amounts at ``banks`` (their datasets)."""
    query: dict[str, object] = {"dataset": query_dataset, "column": customer_column}
    if limit_column is not None:
        query["valueColumn"] = limit_column
    inputs = [query]
    inputs += [
        {"dataset": bank, "column": bank_customer_column, "valueColumn": amount_column}
        for bank in banks
    ]
    return {
        "kind": "stats",
        "protocol": "lending-exceeds" if limit_column is not None else "lending-total",
        "inputs": inputs,
        "dealer": dealer,
        "feeWei": fee_wei,
    }
