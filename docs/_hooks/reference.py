"""mkdocs hook: the command-line and HTTP API reference pages, generated at build time from the
code itself, so they cannot drift from it.

- ``reference/cli.md``: every command of the ``privledger`` Typer app, walked as the command
  tree Typer builds (the same tree ``--help`` prints; Typer carries its own copy of Click, so the
  tree is read through its public attributes), with its arguments and options, their types,
  choices and defaults.
- ``reference/api.md``: every route of a node's client API, from the OpenAPI document of the
  application a node serves (``privledger.api.app.create_app``). Building it opens no node: the
  application is made around the default settings only (no store, chain or worker), and only its
  schema is read.
"""

from __future__ import annotations

import enum
import json
import tempfile
import types
import typing
from types import SimpleNamespace
from typing import Any

import typer
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

CLI_PAGE = "reference/cli.md"
API_PAGE = "reference/api.md"
_METHODS = ("get", "post", "put", "patch", "delete")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    files.append(File.generated(config, API_PAGE, content=api_reference()))
    return files


# --- the command line --------------------------------------------------------------------------
def cli_reference() -> str:
    from privledger.cli import app

    root = typer.main.get_command(app)
    lines = [
        "# Command-line reference",
        "",
        "Generated from the `privledger` command itself when the site is built; "
        "`privledger COMMAND --help` prints the same.",
        "",
    ]
    for path, command in _walk(root, ("privledger",)):
        lines += _command_section(path, command)
    return "\n".join(lines) + "\n"


def _walk(command: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    commands = getattr(command, "commands", None) or {}  # a group
    for name in sorted(commands):
        if not commands[name].hidden:
            found += _walk(commands[name], (*path, name))
    return found


def _command_section(path: tuple[str, ...], command: Any) -> list[str]:
    level = "#" * min(len(path) + 1, 4)
    lines = [f"{level} `{' '.join(path)}`", ""]
    if command.help:
        lines += [_plain(command.help), ""]
    ctx = command.make_context(" ".join(path), [], resilient_parsing=True)
    lines += ["```", command.get_usage(ctx).strip(), "```", ""]
    params = [param for param in command.params if not getattr(param, "hidden", False)]
    if params:
        lines += ["| argument / option | type | default | help |", "|---|---|---|---|"]
        for param in params:
            lines.append(_param_row(param))
        lines.append("")
    return lines


def _param_row(param: Any) -> str:
    if param.param_type_name == "option":
        names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
    else:
        names = f"`{param.name.upper()}`"
    help_text = _plain(getattr(param, "help", None) or "")
    default = param.default
    shown = "" if default is None or callable(default) or default in ((), []) else f"`{default}`"
    if isinstance(default, enum.Enum):
        shown = f"`{default.value}`"
    if param.required:
        shown = "required"
    cell = help_text.replace("|", "\\|")
    return f"| {names} | {_kind(param.type_descriptor.annotation)} | {shown} | {cell} |"


def _kind(annotation: Any) -> str:
    """An option's type as a user types it: the choices of an enum, ``X ...`` for a list."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return " or ".join(_kind(part) for part in parts)
    if typing.get_origin(annotation) in (list, tuple):
        (item, *_) = typing.get_args(annotation) or (str,)
        return f"{_kind(item)} ..."
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{choice}`" for choice in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    if annotation is bool:
        return "flag"
    return getattr(annotation, "__name__", str(annotation))


def _plain(text: str) -> str:
    """Help text as one Markdown paragraph (Typer's rich markup is kept as written)."""
    return " ".join(text.split())


# --- the HTTP API ------------------------------------------------------------------------------
def api_reference() -> str:
    schema = node_openapi()
    lines = [
        "# Node API reference",
        "",
        f"{schema['info']['title']} {schema['info']['version']}. Generated from the OpenAPI "
        "document every node serves at `/api/v1/openapi.json` (interactive, with examples, at "
        '`/api/v1/docs` on any node). Errors are `{"error": {"code", "message"}}` with a '
        "4xx status.",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in schema["paths"].items():
        for method in _METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((method, path, operation))
    for tag in sorted(by_tag):
        lines += [f"## {tag}", ""]
        for method, path, operation in by_tag[tag]:
            lines += _operation_section(method, path, operation)
    return "\n".join(lines) + "\n"


def node_openapi() -> dict[str, Any]:
    from privledger.api.app import create_app
    from privledger.config import NodeSettings

    with tempfile.TemporaryDirectory() as home:
        settings = NodeSettings(org="reference", home=home)
        # only the routes matter: no database, and an index whose rewinds nobody follows
        indexer = SimpleNamespace(on_rewind=lambda listener: None)
        node = SimpleNamespace(settings=settings, engine=None, indexer=indexer)
        app = create_app(node)  # type: ignore[arg-type]
        schema: dict[str, Any] = json.loads(json.dumps(app.openapi()))
    return schema


def _operation_section(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    summary = operation.get("summary")
    if summary:
        lines += [f"**{summary}**", ""]
    description = operation.get("description")
    if description:
        lines += [_plain(description), ""]
    params = operation.get("parameters") or []
    if params:
        lines += ["| parameter | in | required | type |", "|---|---|---|---|"]
        for param in params:
            kind = _type_name(param.get("schema") or {})
            required = "yes" if param.get("required") else ""
            lines.append(f"| `{param['name']}` | {param['in']} | {required} | {kind} |")
        lines.append("")
    body = (operation.get("requestBody") or {}).get("content") or {}
    for media, content in body.items():
        lines += [f"Request body ({media}): {_type_name(content.get('schema') or {})}", ""]
    answers = []
    for status, response in (operation.get("responses") or {}).items():
        content = (response.get("content") or {}).get("application/json") or {}
        kind = _type_name(content.get("schema") or {}) if content else ""
        answers.append(f"| {status} | {_plain(response.get('description', ''))} | {kind} |")
    if answers:
        lines += ["| status | meaning | body |", "|---|---|---|", *answers, ""]
    return lines


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}`"
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            return " or ".join(_type_name(part) for part in schema[combined])
    if schema.get("type") == "array":
        return f"array of {_type_name(schema.get('items') or {})}"
    return f"`{schema.get('type', 'object')}`"
