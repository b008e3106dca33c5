"""privledger's own protocols as components (:mod:`privledger.node.components`): each runner
module declares its components with :class:`BuiltinComponent`, and ``pyproject.toml`` lists them
as entry points like a vendor's."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

from privledger.node.components import Component, Role
from privledger.node.runners.base import InputForm, Run, RunOutput

# a built-in component's code: its runner module and what it imports from these packages
CODE_ROOTS = ("privledger.protocols", "privledger.node.runners")


@cache
def package_version() -> str:
    try:
        return version("privledger")
    except PackageNotFoundError:  # a source tree on the path, not installed
        return "0+unknown"


class BuiltinComponent(Component):
    """One of privledger's protocols: its runner function and the protocol module whose
    docstring states its security model."""

    builtin = True
    code_roots = CODE_ROOTS

    def __init__(
        self,
        *,
        name: str,
        protocols: tuple[str, ...],
        kind: str,
        parties: tuple[int, int],
        roles: tuple[Role, ...],
        outputs: tuple[str, ...],
        output_schema: str,
        enforces: tuple[str, ...],
        security: ModuleType,
        runner: Callable[[Run], RunOutput],
        input_form: Callable[[Any], InputForm] | None = None,
        holds_input: Callable[[Any, int], bool] | None = None,
    ) -> None:
        self.name = name
        self.version = package_version()
        self.protocols = protocols
        self.kind = kind
        self.parties = parties
        self.roles = roles
        self.outputs = outputs
        self.output_schema = output_schema
        self.enforces = enforces
        self.security = inspect.getdoc(security) or ""
        self._runner = runner
        self._input_form = input_form
        self._holds_input = holds_input

    @property
    def code_module(self) -> str:
        return self._runner.__module__

    def input_form(self, spec: Any) -> InputForm:
        return "rows" if self._input_form is None else self._input_form(spec)

    def holds_input(self, spec: Any, org: int) -> bool:
        return True if self._holds_input is None else self._holds_input(spec, org)

    def run(self, task: Run) -> RunOutput:
        return self._runner(task)
