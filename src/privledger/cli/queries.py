"""An analyst's one-line tasks: anonymous query (keyword PIR), joint statistics, multi-lending
check. Each submits its task, follows it and prints the answer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from privledger.cli.choices import PirMode, StatsOp
from privledger.cli.common import NODE_URL, JsonOption, TokenOption, UrlOption, api_call
from privledger.cli.output import console, fail, jsonable
from privledger.cli.tasks import FeeOption, TimeoutOption, WaitOption, submitted

if TYPE_CHECKING:
    from privledger.sdk import NodeClient

query_app = typer.Typer(
    help="Anonymous query (keyword PIR) of another organisation's dataset (operator token).",
    no_args_is_help=True,
)
stats_app = typer.Typer(
    help="Joint statistics over several organisations' columns (operator token).",
    no_args_is_help=True,
)
lending_app = typer.Typer(
    help="Multi-lending check: one customer's loans across other banks (operator token).",
    no_args_is_help=True,
)

DealerOption = Annotated[
    int,
    typer.Option(
        min=1, help="Org id of the dealer: holds none of the inputs (in the demo, the regulator)."
    ),
]
OwnerTokenOption = Annotated[
    str,
    typer.Option(
        envvar="PRIVLEDGER_OWNER_TOKEN",
        help="A data owner token of your node: needed to register the one-off query dataset "
        "(level 4, free) behind --key / --customer; the node must run on this machine.",
    ),
]


def _one_off_rows(
    url: str, owner_token: str, columns: list[str], rows: list[list[object]], name: str
) -> str:
    """Register the requester's own rows (keys, a customer) as a level-4 dataset, named after
    their hash, unless the node holds it already (the same query again adds no dataset); its
    id. The name stays on the node: the chain records no dataset names."""
    import hashlib

    from privledger.sdk import NodeClient

    if not owner_token:
        fail(
            "--key / --customer need --owner-token (or PRIVLEDGER_OWNER_TOKEN)",
            code="usage",
            exit_code=2,
        )
    content = json.dumps([columns, rows], sort_keys=True).encode()
    named = f"{name}-{hashlib.sha256(content).hexdigest()[:16]}"
    with NodeClient(url, owner_token) as owner:
        for held in owner.datasets():
            if held.name == named and not held.retired:
                return held.dataset_id
        dataset = owner.register_rows(columns, rows, name=named)
    return dataset.dataset_id


@query_app.command("pir")
def query_pir(
    dataset: Annotated[str, typer.Option(help="The holder's dataset id (0x...).")],
    column: Annotated[str, typer.Option(help="The holder's key column, e.g. phone.")],
    value_column: Annotated[str, typer.Option(help="The holder's column to retrieve.")],
    key: Annotated[
        list[str] | None,
        typer.Option(help="A key to look up (repeatable); registered as a one-off dataset."),
    ] = None,
    keys: Annotated[
        str | None, typer.Option(help="Instead of --key: your dataset holding the keys.")
    ] = None,
    keys_column: Annotated[
        str | None, typer.Option(help="The key column of --keys (default: --column).")
    ] = None,
    mode: Annotated[
        PirMode,
        typer.Option(
            help="pir: the holder learns nothing about the keys; bucket: cheaper, k-anonymous "
            "only (the holder learns a bucket of ~64 keys each key is in)."
        ),
    ] = PirMode.PIR,
    fee_wei: FeeOption = 0,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    owner_token: OwnerTokenOption = "",
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Look keys up in another organisation's dataset without revealing them (keyword PIR).

    Prints each key with its value or null; the holder is paid per key asked.
    """
    from privledger.sdk import pir_task

    if (keys is None) == (not key):
        fail("give either --key (one or more) or --keys DATASET", code="usage", exit_code=2)

    def run(node: NodeClient) -> object:
        key_column = keys_column or column
        mine = keys
        if mine is None:
            rows: list[list[object]] = [[value] for value in dict.fromkeys(key or [])]
            mine = _one_off_rows(url, owner_token, [key_column], rows, "pir-keys")
        body = pir_task(
            dataset,
            column=column,
            value_column=value_column,
            keys_dataset=mine,
            keys_column=key_column,
            mode=mode.value,
            fee_wei=fee_wei,
        )
        return submitted(node, body, wait, timeout, node.pir_answer)

    api_call(run, url, token)


@stats_app.command("run")
def stats_run(
    dataset: Annotated[
        list[str], typer.Option(help="An input dataset id (repeatable; one must be yours).")
    ],
    column: Annotated[
        list[str], typer.Option(help="The numeric column: once for all inputs, or per --dataset.")
    ],
    dealer: DealerOption,
    op: Annotated[
        list[StatsOp] | None,
        typer.Option(
            help="Repeatable; default: all given. Picks what is printed: the task releases "
            "count, sum, mean and variance (and the histogram with --edges) to you."
        ),
    ] = None,
    edges: Annotated[
        str | None, typer.Option(help="Histogram bin edges, increasing: e.g. 0,1000,5000,1e6.")
    ] = None,
    frac_bits: Annotated[
        int,
        typer.Option(min=0, max=24, help="Fixed-point fractional bits: fewer bits, larger values."),
    ] = 16,
    fee_wei: FeeOption = 0,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Count, sum, mean, variance and histogram of a column across organisations, by secret
    sharing: nobody sees another's rows; only you get the result, and only when the group is at
    least the inputs' minimum size (else "suppressed": true)."""
    from privledger.sdk import stats_task

    chosen = list(dict.fromkeys(op or [o for o in StatsOp if o is not StatsOp.HISTOGRAM or edges]))
    if StatsOp.HISTOGRAM in chosen and not edges:
        fail("--op histogram needs --edges", code="usage", exit_code=2)
    if len(column) not in (1, len(dataset)):
        fail("give --column once, or once per --dataset", code="usage", exit_code=2)
    try:
        bins = [float(edge) for edge in edges.split(",")] if edges else None
    except ValueError as exc:
        fail(f"--edges: {exc}", code="usage", exit_code=2)

    def run(node: NodeClient) -> object:
        body = stats_task(
            dataset,
            column=column[0] if len(column) == 1 else column,
            dealer=dealer,
            histogram_edges=bins,
            frac_bits=frac_bits,
            fee_wei=fee_wei,
        )
        answer = submitted(node, body, wait, timeout, node.stats_answer)
        if not wait:
            return answer  # the submitted task
        fields: dict[str, Any] = jsonable(answer)
        if bins is not None and fields.get("histogram") and fields.get("count") is not None:
            fields["notInBins"] = not_in_bins(fields["count"], fields["histogram"], bins)
        hidden = [o.value for o in StatsOp if o not in chosen]
        return {name: value for name, value in fields.items() if name not in hidden}

    api_call(run, url, token)


def not_in_bins(count: int, histogram: list[int | None], edges: list[float]) -> int:
    """How many of the ``count`` values the histogram's bins do not show, said on stderr: the
    values outside the edges, and those of bins withheld (``null``) as below the group size."""
    unbinned = count - sum(bin_count or 0 for bin_count in histogram)
    if unbinned:
        withheld = " or in withheld bins (null: empty or below the group size)"
        console.print(
            f"{unbinned} of {count} values fall outside the edges [{edges[0]:g}, {edges[-1]:g}]"
            f"{withheld if None in histogram else ''}; widen --edges to bin them",
            markup=False,
        )
    return unbinned


@lending_app.command("check")
def lending_check(
    bank: Annotated[list[str], typer.Option(help="Another bank's loan dataset (repeatable).")],
    dealer: DealerOption,
    customer: Annotated[
        str | None,
        typer.Option(help="The customer id; registered as a one-off dataset of yours."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=0, help="Answer only whether the total exceeds this (equal does not exceed)."
        ),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(help="Instead of --customer: your dataset holding the customer (one row)."),
    ] = None,
    exceeds: Annotated[
        bool, typer.Option(help="With --query: compare with its --limit-column instead.")
    ] = False,
    customer_column: Annotated[str, typer.Option(help="Customer column of --query.")] = "customer",
    limit_column: Annotated[str, typer.Option(help="Limit column of --query.")] = "limit",
    bank_customer_column: Annotated[
        str, typer.Option(help="Customer column of the banks' datasets.")
    ] = "customer",
    amount_column: Annotated[
        str, typer.Option(help="Amount column of the banks' datasets (integer minor units).")
    ] = "amount",
    fee_wei: FeeOption = 0,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    owner_token: OwnerTokenOption = "",
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """One customer's total loans at the other banks -- or, with a limit, only whether it
    exceeds it -- without revealing the customer to them or any bank's amount to you."""
    from privledger.sdk import lending_task

    if (query is None) == (customer is None):
        fail("give either --customer or --query DATASET", code="usage", exit_code=2)
    if query is None and exceeds:
        fail("--exceeds goes with --query; with --customer give --limit", code="usage", exit_code=2)
    if query is not None and limit is not None:
        fail("--limit goes with --customer; with --query use --exceeds", code="usage", exit_code=2)

    def run(node: NodeClient) -> object:
        mine = query
        if mine is None:
            columns = [customer_column] + ([limit_column] if limit is not None else [])
            row: list[object] = [customer] + ([limit] if limit is not None else [])
            mine = _one_off_rows(url, owner_token, columns, [row], "lending-query")
        body = lending_task(
            mine,
            banks=bank,
            dealer=dealer,
            customer_column=customer_column,
            limit_column=limit_column if exceeds or limit is not None else None,
            bank_customer_column=bank_customer_column,
            amount_column=amount_column,
            fee_wei=fee_wei,
        )
        return submitted(node, body, wait, timeout, node.lending_answer)

    api_call(run, url, token)
