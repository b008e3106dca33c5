"""Computation components ("1+X"): every protocol a node runs is a :class:`Component`, found
among the installed Python distributions through the entry-point group ``privledger.components``.

privledger's own protocols are components like any vendor's (``pyproject.toml`` lists them); a
vendor ships a wheel whose entry point names its :class:`Component` object, and a node that has
it installed runs its tasks with no change to the worker, the API or the contracts.

A component is identified by its name, its version and the **hash of its code**
(:func:`code_hash`): SHA-256 over the source files of the component's module and of every
module it imports from its code roots, each named by its module name. The spec of a task names
the component (:class:`ComponentRef`, so its hash is inside the spec hash on chain); every
participant runs a task only with a component it has at that name, version and hash
(:func:`resolve`), and grant terms may list the hashes allowed to touch a dataset
(``components`` in :mod:`privledger.node.terms`).

A built-in protocol keeps its protocol id on chain; a vendor's component runs under the id
:data:`COMPONENT_PROTOCOL_ID`, which a grant allows like any protocol, and its terms then name
which components (by hash) it allows.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from privledger.evm.contracts import Kind

if TYPE_CHECKING:
    from privledger.node.runners.base import InputForm, Run, RunOutput

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "privledger.components"
OWN_DISTRIBUTION = "privledger"
COMPONENT_PROTOCOL_ID = 31  # on chain: a vendor's component (grants allow bit 1 << 31)
KINDS: dict[str, Kind] = {"psi": Kind.PSI, "pir": Kind.PIR, "stats": Kind.STATS, "fl": Kind.FL}
COMPONENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
HASH_PATTERN = r"^0x[0-9a-f]{64}$"
Role = Literal["requester", "provider", "dealer", "aggregator"]


class ComponentRef(BaseModel):
    """A component as a task spec names it: the code every participant must run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=COMPONENT_NAME_PATTERN, description="the component's id")
    version: str = Field(min_length=1, max_length=64, description="its version")
    hash: str = Field(pattern=HASH_PATTERN, description="SHA-256 of its code (code_hash)")


class ComponentUnavailable(Exception):
    """This node has no component by that name, version and hash."""


class SpecRefused(ValueError):
    """The component does not take this spec (its parties, output or params)."""


class Component(ABC):
    """One computation, as the node runs it: what it is, what it takes and enforces, and the code
    that runs one role of it over channels to the other participants.

    A subclass sets the attributes (as class attributes or in ``__init__``) and implements
    :meth:`run`; its instance is what the entry point names. ``protocols`` are the values of the
    spec's ``protocol`` field it runs; a vendor's component takes its options in the spec's
    ``params``, checked by ``params_model``.
    """

    name: str
    version: str
    protocols: tuple[str, ...]
    kind: str  # the computation kind on chain: psi, pir, stats or fl
    parties: tuple[int, int]  # the fewest and most inputs
    roles: tuple[Role, ...]
    outputs: tuple[str, ...]  # what it may release, as grant terms name it
    output_schema: str  # one line of its result file, in words
    enforces: tuple[str, ...]  # the grant terms its provider side enforces itself
    security: str  # its adversary model and what each party learns
    code_roots: tuple[str, ...] = ()  # default: the top package of its code module
    params_model: type[BaseModel] | None = None
    builtin: bool = False  # privledger's own (keeps its own protocol id on chain)

    @property
    def code_module(self) -> str:
        """The module its code starts from (:func:`code_hash`)."""
        return type(self).__module__

    def input_form(self, spec: Any) -> InputForm:
        """How this party's input reaches :meth:`run`: rows (the default), the file, or the key
        column as an Arrow array."""
        return "rows"

    def holds_input(self, spec: Any, org: int) -> bool:
        """Whether ``org`` takes part only with an input of its own (an aggregator need not)."""
        return True

    def check(self, spec: Any) -> None:
        """Refuse (:class:`SpecRefused`) a spec this component does not take: the number of
        inputs, the output, the params."""
        if spec.kind != self.kind:
            raise SpecRefused(f"{self.name} is a {self.kind} computation, not {spec.kind}")
        low, high = self.parties
        if not low <= len(spec.inputs) <= high:
            raise SpecRefused(f"{self.name} takes {low} to {high} inputs, not {len(spec.inputs)}")
        if spec.output not in self.outputs:
            raise SpecRefused(f"{self.name} releases {list(self.outputs)}, not {spec.output}")
        if self.params_model is not None:
            self.params(spec)

    def params(self, spec: Any) -> Any:
        """The spec's ``params`` as this component's ``params_model``."""
        if self.params_model is None:
            return None
        try:
            return self.params_model.model_validate(getattr(spec, "params", {}))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise SpecRefused(f"params.{where}: {error['msg']}") from None

    @abstractmethod
    def run(self, task: Run) -> RunOutput:
        """Run this party's role of the task over ``task.channels``: its output and the units
        its providers are paid for."""

    @property
    def ref(self) -> ComponentRef:
        return ComponentRef(name=self.name, version=self.version, hash=code_hash(self))


# ``ast.parse`` from several threads at once fails now and then on CPython 3.11 ("AST constructor
# recursion depth mismatch", a SystemError): the first submissions of a node come at once
_HASHING = threading.Lock()


def code_hash(component: Component) -> str:
    """SHA-256 over the component's code: its module and every module it imports, directly or
    not, from under its code roots, each as (module name, SHA-256 of the file), sorted."""
    module = component.code_module
    roots = component.code_roots or (module.split(".")[0],)
    with _HASHING:  # one computation, not one per request thread
        return _closure_hash(module, roots)


@cache
def _closure_hash(module: str, roots: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(_code_files(module, roots).items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return "0x" + digest.hexdigest()


def _code_files(module: str, roots: tuple[str, ...]) -> dict[str, Path]:
    """The source file of ``module`` and of every module under ``roots`` it imports (and of
    their parent packages, which run first), transitively."""
    files: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in files:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.has_location:
            continue
        path = Path(spec.origin)
        files[name] = path
        parent = name.rpartition(".")[0]
        todo += [parent] if parent and _under(parent, roots) else []
        if path.suffix == ".py":
            is_package = spec.submodule_search_locations is not None
            todo += [n for n in _imported(path, name, is_package) if _under(n, roots)]
    return files


def _under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def _imported(path: Path, module: str, is_package: bool) -> Iterator[str]:
    """The modules a source file imports: ``from a import b`` yields ``a`` and, when ``b`` is a
    module, ``a.b``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            yield base
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if importlib.util.find_spec(base) is not None and _is_module(candidate):
                    yield candidate


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@cache
def installed() -> Mapping[str, Component]:
    """Every installed component by the protocol it runs. A component that does not load,
    claims a protocol another one runs, or -- from any distribution but privledger's own --
    claims to be built in or to run a built-in protocol, is left out with a warning: a vendor's
    wheel can add protocols, never take over one of privledger's."""
    found: dict[str, Component] = {}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        component = load_component(entry)
        if component is None:
            continue
        for protocol in component.protocols:
            if protocol in found and found[protocol] is not component:
                logger.warning(
                    "component %s also claims protocol %r of %s; left out",
                    component.name,
                    protocol,
                    found[protocol].name,
                )
                continue
            found[protocol] = component
    return found


def load_component(entry: EntryPoint) -> Component | None:
    """The component an entry point names, or None (with a warning) when it must be left out."""
    try:
        component = entry.load()
    except Exception as exc:  # a broken plugin must not stop the node
        logger.warning("component %s does not load: %s", entry.value, exc)
        return None
    if not isinstance(component, Component):
        logger.warning("entry point %s is not a Component", entry.value)
        return None
    ours = entry.dist is not None and entry.dist.name == OWN_DISTRIBUTION
    builtin_protocols = sorted(set(component.protocols) & set(BUILTIN_IDS))
    if not ours and (component.builtin or builtin_protocols):
        logger.warning(
            "component %s of %s claims to be built in or a built-in protocol %s; left out",
            component.name,
            entry.dist.name if entry.dist is not None else "an unknown distribution",
            builtin_protocols,
        )
        return None
    return component


def component_for(protocol: str) -> Component:
    """The installed component that runs ``protocol``."""
    component = installed().get(protocol)
    if component is None:
        raise ComponentUnavailable(f"no installed component runs protocol {protocol!r}")
    return component


def resolve(ref: ComponentRef, protocol: str) -> Component:
    """The installed component the spec names, at its version and hash exactly."""
    component = component_for(protocol)
    if component.name != ref.name:
        raise ComponentUnavailable(
            f"protocol {protocol!r} is run here by {component.name}, not {ref.name}"
        )
    mine = component.ref
    if (mine.version, mine.hash) != (ref.version, ref.hash):
        raise ComponentUnavailable(
            f"{ref.name} is installed here at version {mine.version} with code hash {mine.hash}, "
            f"the task names version {ref.version} with {ref.hash}"
        )
    return component


def protocol_id(protocol: str) -> int:
    """The protocol's id on chain: a built-in's own, :data:`COMPONENT_PROTOCOL_ID` for others."""
    component = installed().get(protocol)
    if component is not None and component.builtin:
        return BUILTIN_IDS[protocol]
    return COMPONENT_PROTOCOL_ID


def protocol_kind(protocol: str) -> Kind:
    """The computation kind on chain of the component that runs ``protocol``."""
    return KINDS[component_for(protocol).kind]


# the built-in protocols' ids on chain (1..30; a grant allows protocols as bits 1 << id)
BUILTIN_IDS: dict[str, int] = {
    "ecdh": 1,
    "kkrt": 2,
    "intersection3": 3,
    "union3": 4,
    "difference": 5,
    "membership": 6,
    "simplepir": 7,
    "bucket": 8,
    "joint-stats": 9,
    "lending-total": 10,
    "lending-exceeds": 11,
    "vertical-lr": 12,
    "horizontal-lr": 13,
    "horizontal-mlp": 14,
    "predict": 15,
    "vertical-predict": 16,
    "rr22": 17,
    "vertical-gbdt": 18,
}
# a protocol id on chain -> the name the explorer and the metrics show
PROTOCOL_NAMES = {number: name for name, number in BUILTIN_IDS.items()}
PROTOCOL_NAMES[COMPONENT_PROTOCOL_ID] = "component"
