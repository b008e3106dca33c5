"""The computation components a node has installed (docs/components.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from privledger.cli.common import NODE_URL, JsonOption, TokenOption, UrlOption, api_call
from privledger.cli.output import json_chosen

if TYPE_CHECKING:
    from privledger.sdk import NodeClient

component_app = typer.Typer(
    help="The computation components your node runs: what a task spec and a grant name.",
    no_args_is_help=True,
)


@component_app.command("list")
def component_list(
    url: UrlOption = NODE_URL, token: TokenOption = "", json_output: JsonOption = False
) -> None:
    """Every component installed on your node: name, version, code hash (what a task spec and
    a grant's `components` term name), protocols, kind, and whether it is privledger's own."""

    def rows(node: NodeClient) -> object:
        components = node.components()
        if json_chosen():
            return components
        return [
            {
                "name": c.name,
                "version": c.version,
                "hash": c.hash,
                "protocols": ", ".join(c.protocols),
                "kind": c.kind,
                "builtin": c.builtin,
            }
            for c in components
        ]

    api_call(rows, url, token, title="components")
