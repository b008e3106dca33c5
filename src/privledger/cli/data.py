"""A data owner's commands: datasets, grants, models, and the worked scenario's data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privledger.cli.choices import TaskKind
from privledger.cli.common import NODE_URL, JsonOption, TokenOption, UrlOption, api_call
from privledger.cli.output import fail, show

dataset_app = typer.Typer(help="Datasets on your node (data owner token).", no_args_is_help=True)
grant_app = typer.Typer(help="Grants on your datasets (data owner token).", no_args_is_help=True)
model_app = typer.Typer(
    help="Trained models: register, list, prediction log.", no_args_is_help=True
)
scenario_app = typer.Typer(help="Generate the data of a worked scenario.", no_args_is_help=True)

DATASET_COLUMNS = ("datasetId", "name", "level", "rowCount", "unitPrice", "columns", "retired")


@dataset_app.command("register")
def dataset_register(
    path: Annotated[
        str,
        typer.Argument(
            help="A CSV or Parquet file on this machine, uploaded; with --on-node, one in the "
            "import/ folder of the organisation's node home, relative to it."
        ),
    ],
    name: Annotated[str, typer.Option(help="A short name.")],
    level: Annotated[
        int, typer.Option(min=1, max=4, help="Classification level 1 (public) .. 4 (core).")
    ],
    unit_price: Annotated[int, typer.Option(min=0, help="Wei per matched row.")] = 0,
    on_node: Annotated[
        bool, typer.Option("--on-node", help="The file is on the node: send only its path.")
    ] = False,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Register a dataset: its commitment, schema hash and row count go on chain, a copy stays
    on the node."""
    if not on_node and not Path(path).is_file():
        fail(f"no file {path} here (one on the node takes --on-node)", code="usage", exit_code=2)
    api_call(
        lambda node: (
            node.register_dataset(path, name, level=level, unit_price=unit_price)
            if on_node
            else node.register_file(Path(path), name, level=level, unit_price=unit_price)
        ),
        url,
        token,
    )


@dataset_app.command("list")
def dataset_list(
    url: UrlOption = NODE_URL, token: TokenOption = "", json_output: JsonOption = False
) -> None:
    """The datasets your node holds."""
    api_call(lambda node: node.datasets(), url, token, title="datasets", columns=DATASET_COLUMNS)


@grant_app.command("issue")
def grant_issue(
    dataset: Annotated[str, typer.Argument(help="Dataset id (0x...).")],
    grantee: Annotated[int, typer.Option(min=1, help="The organisation allowed to use it.")],
    kind: Annotated[list[TaskKind], typer.Option(help="What it may be used for; repeatable.")],
    uses: Annotated[int, typer.Option(min=1, help="At most this many tasks.")] = 10,
    days: Annotated[int, typer.Option(min=1, help="Valid for this many days.")] = 30,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Grant an organisation the use of a dataset (a signed chain transaction)."""
    kinds = [chosen.value for chosen in kind]
    api_call(
        lambda node: node.grant(dataset, grantee, kinds, expires_in_s=days * 86_400, max_uses=uses),
        url,
        token,
    )


@grant_app.command("revoke")
def grant_revoke(
    grant_id: Annotated[str, typer.Argument(help="Grant id (0x...).")],
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Revoke a grant: tasks not yet run under it stop."""
    api_call(lambda node: node.revoke(grant_id), url, token)


@model_app.command("register")
def model_register(
    task_id: Annotated[int, typer.Argument(help="The completed horizontal FL task.")],
    name: Annotated[str, typer.Option(help="A short name, e.g. fraud-lr.")],
    unit_price: Annotated[int, typer.Option(min=0, help="Wei per predicted row.")] = 0,
    upstream_bps: Annotated[
        int,
        typer.Option(
            min=0, max=10_000, help="Share of prediction fees passed to the training data owners."
        ),
    ] = 3_000,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Register a trained model on chain (data owner token); then grant `fl` use to predict."""
    api_call(
        lambda node: node.register_model(
            task_id, name, unit_price=unit_price, upstream_bps=upstream_bps
        ),
        url,
        token,
    )


@model_app.command("list")
def model_list(
    url: UrlOption = NODE_URL, token: TokenOption = "", json_output: JsonOption = False
) -> None:
    """The models your node holds."""
    api_call(lambda node: node.models(), url, token, title="models")


@model_app.command("calls")
def model_calls(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Every prediction call of a model, with its anchoring batch (data owner token)."""
    api_call(lambda node: node.prediction_log(name), url, token, title=f"calls of {name}")


@scenario_app.command("fraud")
def scenario_fraud(
    out: Annotated[Path, typer.Option(help="Directory for telecom.csv and bank.csv.")],
    customers: Annotated[int, typer.Option(min=10, help="The bank's customers.")] = 3_000,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """Write the telecom-fraud data (documented in privledger.scenarios.fraud) and print the
    vertical FL task to submit from the bank's node once both files are registered."""
    from privledger.scenarios import fraud

    data = fraud.generate(out, customers=customers, seed=seed)
    template = fraud.task_body("<bank dataset id>", "<telecom dataset id>", 0, 0)
    show(
        {
            "telecomCsv": str(data.telecom_csv),
            "bankCsv": str(data.bank_csv),
            "commonPeople": data.common,
            "fraudCases": data.fraud_cases,
            "task": {**template, "dealer": "<dealer org id>", "feeWei": "<fee in wei>"},
        }
    )
