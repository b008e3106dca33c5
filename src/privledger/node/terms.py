"""Grant terms (F3): what a grantee may do with a dataset, and the one function that matches a task
spec against them.

A grant's terms are a canonical JSON document (sorted keys, compact) whose keccak256 is the grant's
``termsHash`` on chain; the whole document is published in the ``GrantIssued`` event, so the
requester's node, every provider node, the explorer and an auditor read the same terms. The
GrantRegistry and TaskLedger enforce themselves what they can see -- the kinds and protocols, the
dealer, the fee floor, expiry and uses -- (:meth:`GrantTerms.chain_terms`); provider nodes enforce
the rest before they read any data (:func:`violation`), and the protocols enforce the set-size cap
and the minimum result at the provider (``node/runners``).

Each column of the dataset named in the terms lists what may happen to it:

- ``join``: a join key only -- matched against the grantee's keys, never released otherwise;
- ``aggregate``: values enter aggregates only (joint statistics, loan totals, model training),
  over at least ``min_result`` of the provider's own rows;
- ``retrieve``: values may be returned by keyword (PIR).

A training task spends at most ``max_epsilon`` of differential privacy when the terms set it
(:mod:`privledger.node.budget` computes it from the spec; a task without ``dp`` is refused), and
a joint prediction releases only the ids at ``min_threshold`` or above when the terms set it.

A protocol that cannot enforce a term against a malicious requester is refused for that data when
the term is set: each component lists the terms it enforces (``enforces``,
:mod:`privledger.node.components`); docs/grants.md has the table. ``components`` lists the code
hashes of the components allowed to touch the data: a task naming another is refused.

``derive`` is the owner's standing consent to pipelines (:mod:`privledger.node.derived`): after a
set task under the grant, the grantee may have the owner's node register the owner's aligned rows
as a derived dataset, granted to the grantee under these same terms (without ``derive``) and
naming the grant it came from (``parent_grant``, the registry's ``parentGrant`` too): the
derived grant holds only while that one does (neither revoked, expired nor used up), expires with
it at the latest, and each of its uses counts against the parent's -- the GrantRegistry checks
all this when the grant is issued and at every use; provider nodes check the parents again before
they read data (:func:`privledger.node.grants.lapse`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from privledger.evm.contracts import ChainTerms, Grant, Kind
from privledger.evm.hashing import keccak256
from privledger.node.budget import training_epsilon
from privledger.node.components import (
    BUILTIN_IDS,
    HASH_PATTERN,
    installed,
    protocol_id,
    protocol_kind,
)
from privledger.node.spec import (
    PROTOCOL_PATTERN,
    KkrtSpec,
    Output,
    PairPsiSpec,
    SpecInput,
    TaskSpec,
    VerticalPredictSpec,
)

ColumnUse = Literal["join", "aggregate", "retrieve"]
# "contribution": vertical-gbdt pays a feature owner its aligned rows times its share of the
# model's splits, counted by itself (node/runners/gbdt.py); older terms keep their hash
PriceUnit = Literal["matched_row", "query_key", "call", "flat", "contribution"]
PER_TASK_UNITS = frozenset({"call", "flat"})  # a price of the task as a whole, not per unit
ANY_DEALER = 2**32 - 1  # on chain: every organisation may deal or aggregate
# protocols that train a model without differential privacy (refused by terms with max_epsilon)
UNPRIVATE_TRAINING: frozenset[str] = frozenset({"vertical-gbdt"})
# protocols that tell the requester the value of the rows it names by key: their value column
# is retrieved, not aggregated -- the multi-lending total is one bank's own figure for a
# customer whenever no other bank lends to it (or the others are the requester's accomplices),
# and so is the limit check: the requester picks the limit task by task, and a binary search
# over it reads the total in log2 of its range checks (at most 48, amounts being below 2^48)
RETRIEVING: frozenset[str] = frozenset({"lending-total", "lending-exceeds"})
# protocols a grant by kinds leaves out: each hands the requester a provider's rows themselves
# (the union its whole key column, the lending total or limit check a customer's figure);
# grant them by name
EXPLICIT_ONLY: frozenset[str] = frozenset({"union3", "lending-total", "lending-exceeds"})
DEFAULT_USES: dict[str, tuple[ColumnUse, ...]] = {
    "psi": ("join",),
    "pir": ("join", "retrieve"),
    "stats": ("join", "aggregate"),
    "fl": ("join", "aggregate"),
}


class Price(BaseModel):
    """What a use of the data costs: ``wei`` per unit the provider anchors, or per task for the
    units ``call`` and ``flat``; every provider node holds the fee to it before its output
    leaves (:mod:`privledger.node.pricing`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: PriceUnit = "matched_row"
    wei: int = Field(default=0, ge=0, lt=2**128, description="wei per unit")


class DeriveTerms(BaseModel):
    """The owner's consent to derived datasets of a grant (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream_bps: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="the share of what a derived dataset earns that goes to its parents' owners",
    )


class GrantTerms(BaseModel):
    """The terms document of a grant; :meth:`canonical_json` is hashed on chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    purpose: str = Field(default="", max_length=2_000)
    protocols: tuple[Annotated[str, Field(pattern=PROTOCOL_PATTERN)], ...] = Field(
        min_length=1, max_length=31
    )
    columns: dict[str, tuple[ColumnUse, ...]] = Field(
        min_length=1, description="per column of the dataset, what may happen to it"
    )
    outputs: tuple[Output, ...] = ("requester",)
    min_result: int = Field(default=1, ge=1, description="the fewest rows a result may cover")
    max_requester_set: int | None = Field(
        default=None, ge=1, description="the most keys the grantee may bring"
    )
    max_requester_ratio: float | None = Field(
        default=None, gt=0, description="the most keys as a multiple of the provider's rows"
    )
    price: Price = Price()
    min_fee_wei: int = Field(default=0, ge=0, lt=2**96, description="the fee floor")
    dealer: int | None = Field(
        default=None, ge=1, lt=ANY_DEALER, description="the one org allowed to deal (None: any)"
    )
    service: str | None = Field(default=None, description="the published service granted")
    max_epsilon: float | None = Field(
        default=None,
        gt=0,
        description="training: the most privacy budget a task may spend (epsilon at its delta); "
        "a training task without differential privacy is refused",
    )
    min_threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="joint prediction: the lowest probability threshold an ids output may use "
        "(scores, every row's probability, are refused)",
    )
    components: tuple[Annotated[str, Field(pattern=HASH_PATTERN)], ...] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the code hashes of the components allowed to touch the data (None: any "
        "component of the allowed protocols)",
    )
    derive: DeriveTerms | None = Field(
        default=None,
        description="the grantee may have the owner's aligned rows of a set task under this grant "
        "registered as a derived dataset, granted to it under these terms (None: never)",
    )
    parent_grant: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-f]{64}$",
        description="the grant this one was derived under (its ``derive``; the registry's "
        "``parentGrant``): this grant holds only while that one does, and shares its uses",
    )

    @model_validator(mode="after")
    def _columns_used(self) -> GrantTerms:
        if any(not uses for uses in self.columns.values()):
            raise ValueError("every column of the terms allows at least one use")
        return self

    def canonical_json(self) -> str:
        document = self.model_dump(mode="json")
        for later in (
            "max_epsilon",
            "min_threshold",
            "components",
            "derive",
            "parent_grant",
        ):  # unset, older terms keep their hash
            if document[later] is None:
                del document[later]
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def hash(self) -> bytes:
        return keccak256(self.canonical_json().encode())

    @property
    def kinds(self) -> Kind:
        kinds = Kind(0)
        for protocol in self.protocols:
            kinds |= protocol_kind(protocol)
        return kinds

    def chain_terms(self, *, expiry: int, max_uses: int) -> ChainTerms:
        """What the GrantRegistry enforces of these terms."""
        protocols = 0
        for protocol in self.protocols:
            protocols |= 1 << protocol_id(protocol)
        return ChainTerms(
            kinds=self.kinds,
            protocols=protocols,
            dealer=ANY_DEALER if self.dealer is None else self.dealer,
            min_fee=self.min_fee_wei,
            expiry=expiry,
            max_uses=max_uses,
            parent_grant=bytes(32)
            if self.parent_grant is None
            else bytes.fromhex(self.parent_grant[2:]),
        )

    def agrees_with(self, grant: Grant) -> bool:
        """Whether the grant on chain carries exactly these terms (hash and enforced fields)."""
        ours = self.chain_terms(expiry=grant.expiry, max_uses=grant.max_uses)
        theirs = ChainTerms(
            grant.kinds,
            grant.protocols,
            grant.dealer,
            grant.min_fee,
            grant.expiry,
            grant.max_uses,
            grant.parent_grant,
        )
        return grant.terms_hash == self.hash and ours == theirs

    def max_set(self, provider_rows: int) -> int | None:
        """The most keys the grantee may bring against ``provider_rows`` rows (None: no cap).

        The ratio's cap is rounded down, on the ratio as the terms document writes it (0.29 of
        100 rows is 29 keys, not the 28 of binary floating point), and never up to one key: a
        ratio allowing less than one key against the provider's rows allows none."""
        caps = [self.max_requester_set] if self.max_requester_set is not None else []
        ratio = self.max_requester_ratio
        if ratio is not None and math.isfinite(ratio):
            caps.append(math.floor(Fraction(repr(ratio)) * provider_rows))
        return min(caps) if caps else None

    def unenforceable(self) -> str | None:
        """Why no protocol these terms allow could keep them (a grant no task can use)."""
        missing = [protocol for protocol in self.protocols if protocol not in installed()]
        if missing:
            return f"no component installed here runs protocol {missing[0]!r}"
        if self.min_result > 1 and not self._any_enforces("min_result"):
            return f"none of {list(self.protocols)} can enforce a minimum result at the provider"
        capped = self.max_requester_set is not None or self.max_requester_ratio is not None
        if capped and not self._any_enforces("max_requester_set"):
            return f"none of {list(self.protocols)} can cap the requester's set at the provider"
        if self.max_epsilon is not None and not self._any_enforces("max_epsilon"):
            return f"none of {list(self.protocols)} trains with differential privacy"
        if self.min_threshold is not None and not self._any_enforces("min_threshold"):
            return f"none of {list(self.protocols)} releases ids above a threshold"
        if self.per_unit_price and not self._any_enforces("price"):
            return f"none of {list(self.protocols)} can hold a price per unit at the provider"
        return None

    @property
    def per_unit_price(self) -> bool:
        """Whether the price grows with the units a provider anchors (not per call or flat)."""
        return self.price.wei > 0 and self.price.unit not in PER_TASK_UNITS

    def _any_enforces(self, term: str) -> bool:
        return any(enforces(protocol, term) for protocol in self.protocols)

    @classmethod
    def parse(cls, document: str) -> GrantTerms:
        return cls.model_validate_json(document)


def default_terms(
    kinds: Iterable[str], columns: Iterable[str], *, min_fee_wei: int = 0
) -> GrantTerms:
    """Terms for a grant issued by kinds only: the kinds' protocols but those of
    :data:`EXPLICIT_ONLY` (granted by name), every column of the dataset with the kinds'
    natural uses, any dealer, results to the requester or both."""
    kinds = tuple(kinds)
    protocols = tuple(
        protocol
        for protocol in BUILTIN_IDS
        if protocol_kind_name(protocol) in kinds and protocol not in EXPLICIT_ONLY
    )
    uses = tuple(sorted({use for kind in kinds for use in DEFAULT_USES[kind]}))
    return GrantTerms(
        protocols=protocols,
        columns=dict.fromkeys(columns, uses),
        outputs=("requester", "both"),
        min_fee_wei=min_fee_wei,
    )


def enforces(protocol: str, term: str) -> bool:
    """Whether the installed component of ``protocol`` enforces ``term`` at the provider."""
    component = installed().get(protocol)
    return component is not None and term in component.enforces


def protocol_kind_name(protocol: str) -> str:
    """The computation kind (psi, pir, stats, fl) of an installed component's protocol."""
    component = installed().get(protocol)
    return "" if component is None else component.kind


@dataclass(frozen=True)
class TermViolation:
    """The first term a task breaks, by its name in the terms document, and why."""

    term: str
    message: str

    def __str__(self) -> str:
        return f"term {self.term!r}: {self.message}"


def column_uses(spec: TaskSpec, item: SpecInput) -> dict[str, tuple[ColumnUse, ...]]:
    """What the task does with each column of one input: every use, so that a column named in
    two roles (a key also named as a feature, say) is held to both."""
    protocol = spec.protocol
    aggregated = ("joint-stats", "horizontal-lr", "horizontal-mlp", "predict")
    named: list[tuple[str, ColumnUse]] = [
        (item.column, "aggregate" if protocol in aggregated else "join")
    ]
    named += [(feature, "aggregate") for feature in item.features or ()]
    if item.value_column is not None:
        retrieved = spec.kind == "pir" or protocol in RETRIEVING
        named.append((item.value_column, "retrieve" if retrieved else "aggregate"))
    uses: dict[str, tuple[ColumnUse, ...]] = {}
    for column, use in named:
        if use not in uses.get(column, ()):
            uses[column] = (*uses.get(column, ()), use)
    return uses


def _column_violation(spec: TaskSpec, item: SpecInput, terms: GrantTerms) -> TermViolation | None:
    """Whether the terms allow every use the task makes of each column of ``item``."""
    for column, uses in column_uses(spec, item).items():
        allowed = terms.columns.get(column)
        if allowed is None:
            return TermViolation("columns", f"column {column!r} is not granted")
        for use in uses:
            if use not in allowed:
                return TermViolation(
                    "columns", f"column {column!r} allows {list(allowed)}, not {use}"
                )
    return None


def _code_violation(spec: TaskSpec, terms: GrantTerms) -> TermViolation | None:
    """Whether the terms allow the task's protocol and the component (by code hash) running it."""
    if spec.protocol not in terms.protocols:
        return TermViolation("protocols", f"{spec.protocol} is not among {list(terms.protocols)}")
    if terms.components is not None and spec.component.hash not in terms.components:
        return TermViolation(
            "components",
            f"{spec.component.name} {spec.component.version} (code {spec.component.hash}) is "
            "not among the components allowed",
        )
    return None


def _service_violation(spec: TaskSpec, terms: GrantTerms) -> TermViolation | None:
    """A published service's grant serves calls of that service alone: the task names it, so
    the provider checks the call against the service and logs it under that name (F12: every
    call logged and anchored, :mod:`privledger.node.services`)."""
    called = spec.service if isinstance(spec, PairPsiSpec) else None
    if terms.service is None or called == terms.service:
        return None
    return TermViolation(
        "service",
        f"the grant serves calls of service {terms.service!r}: the task must name it"
        + ("" if called is None else f", not {called!r}"),
    )


def _cap_violation(
    spec: TaskSpec, terms: GrantTerms, sizes: tuple[int, int] | None
) -> TermViolation | None:
    """A set-size cap the task's protocol cannot enforce, or (``sizes`` known) a requester set
    over it."""
    capped = terms.max_requester_set is not None or terms.max_requester_ratio is not None
    bucketed = isinstance(spec, KkrtSpec) and spec.buckets is not None
    if capped and (not enforces(spec.protocol, "max_requester_set") or bucketed):
        return TermViolation(
            "max_requester_set", f"{spec.protocol} cannot cap the requester's set at the provider"
        )
    cap = None if sizes is None else terms.max_set(sizes[1])
    if sizes is not None and cap is not None and sizes[0] > cap:
        ratio = terms.max_requester_ratio
        by_ratio = ratio is not None and cap != terms.max_requester_set
        return TermViolation(
            "max_requester_set",
            f"the requester brings {sizes[0]} keys, at most {cap}"
            + (f" (max_requester_ratio {ratio} of {sizes[1]} rows)" if by_ratio else ""),
        )
    return None


def _unit_price_violation(spec: TaskSpec, terms: GrantTerms) -> TermViolation | None:
    """A price per unit the task's protocol cannot hold at the provider: one whose component
    does not count what its provider answers (the set operations' providers anchor no units),
    or bucketed KKRT, whose provider delivers each bucket's tags before it knows how many keys
    it answers."""
    if not terms.per_unit_price:
        return None
    bucketed = isinstance(spec, KkrtSpec) and spec.buckets is not None
    if bucketed or not enforces(spec.protocol, "price"):
        return TermViolation(
            "price",
            f"{'bucketed ' if bucketed else ''}{spec.protocol} cannot hold a price per unit at "
            "the provider (price it per call or flat)",
        )
    return None


def violation(
    spec: TaskSpec,
    terms: GrantTerms,
    item: SpecInput,
    *,
    fee: int,
    sizes: tuple[int, int] | None = None,
) -> TermViolation | None:
    """Why the task ``spec``, paying ``fee``, breaks the ``terms`` of the grant on its input
    ``item``; None when it keeps them. ``sizes`` (the requester's rows, the provider's rows),
    when the caller knows them, are held to the set-size cap too. The submitting node and every
    provider node call this one function; the contract checks the protocol, dealer and fee
    floor again, and the provider the requester's set size as the protocol announces it."""
    problem = _code_violation(spec, terms)
    if problem is not None:
        return problem
    problem = _column_violation(spec, item, terms)
    if problem is not None:
        return problem
    # the size alone tells less than the intersection, the ids above a threshold less than the
    # scores: terms that release one release the other
    released = set(terms.outputs) | ({"size"} if "requester" in terms.outputs else set())
    released |= {"ids"} if "scores" in terms.outputs else set()
    if spec.output not in released:
        return TermViolation("outputs", f"output to {spec.output} is not allowed")
    dealer = spec.dealer_org
    if terms.dealer is not None and dealer is not None and dealer != terms.dealer:
        return TermViolation("dealer", f"organisation {dealer} may not deal for this data")
    if fee < terms.min_fee_wei:
        return TermViolation("min_fee_wei", f"the fee {fee} is below the floor {terms.min_fee_wei}")
    problem = _service_violation(spec, terms)
    if problem is not None:
        return problem
    if terms.min_result > 1 and not enforces(spec.protocol, "min_result"):
        return TermViolation(
            "min_result", f"{spec.protocol} cannot enforce a minimum result at the provider"
        )
    problem = _cap_violation(spec, terms, sizes) or _unit_price_violation(spec, terms)
    if problem is not None:
        return problem
    # a joint prediction's threshold is public in its spec: refused before any data is read
    if (
        terms.min_threshold is not None
        and isinstance(spec, VerticalPredictSpec)
        and (spec.threshold is None or spec.threshold < terms.min_threshold)
    ):
        asked = "scores" if spec.threshold is None else f"ids at threshold {spec.threshold}"
        return TermViolation(
            "min_threshold", f"{asked}: only ids at {terms.min_threshold} or above"
        )
    if terms.max_epsilon is not None and spec.protocol in UNPRIVATE_TRAINING:
        return TermViolation("max_epsilon", f"{spec.protocol} trains without differential privacy")
    if terms.max_epsilon is not None and enforces(spec.protocol, "max_epsilon"):
        spent = training_epsilon(spec)
        if spent is None:
            return TermViolation("max_epsilon", "the terms require differential privacy (dp)")
        if spent > terms.max_epsilon:
            return TermViolation(
                "max_epsilon", f"the task spends epsilon {spent:.4g}, at most {terms.max_epsilon}"
            )
    return None
