"""The one function that matches a task spec against a grant's terms, and the terms document."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from privledger.evm.contracts import Kind
from privledger.node.spec import (
    PROTOCOL_IDS,
    SpecInput,
    TaskSpec,
    parse_spec,
)
from privledger.node.terms import (
    ANY_DEALER,
    GrantTerms,
    Price,
    column_uses,
    default_terms,
    violation,
)

MINE = SpecInput(dataset="0x" + "11" * 32, org=1, column="phone")
THEIRS = SpecInput(dataset="0x" + "22" * 32, org=2, column="phone")


def _psi(**fields: object) -> TaskSpec:
    return parse_spec({"protocol": "ecdh", "requester": 1, "inputs": (MINE, THEIRS), **fields})


def test_a_task_within_the_terms_keeps_them() -> None:
    terms = GrantTerms(protocols=("ecdh",), columns={"phone": ("join",)}, min_fee_wei=5)
    assert violation(_psi(), terms, THEIRS, fee=5) is None


@pytest.mark.parametrize(
    ("terms", "spec", "fee", "term"),
    [
        (GrantTerms(protocols=("kkrt",), columns={"phone": ("join",)}), _psi(), 0, "protocols"),
        (GrantTerms(protocols=("ecdh",), columns={"email": ("join",)}), _psi(), 0, "columns"),
        (
            GrantTerms(protocols=("ecdh",), columns={"phone": ("join",)}),
            _psi(output="both"),
            0,
            "outputs",
        ),
        (
            GrantTerms(protocols=("ecdh",), columns={"phone": ("join",)}, min_fee_wei=9),
            _psi(),
            8,
            "min_fee_wei",
        ),
        (
            GrantTerms(protocols=("kkrt",), columns={"phone": ("join",)}, min_result=10),
            _psi(protocol="kkrt"),
            0,
            "min_result",
        ),
        (
            GrantTerms(
                protocols=("intersection3",), columns={"phone": ("join",)}, max_requester_set=5
            ),
            parse_spec(
                {
                    "protocol": "intersection3",
                    "requester": 1,
                    "inputs": (
                        MINE,
                        THEIRS,
                        SpecInput(dataset="0x" + "33" * 32, org=3, column="phone"),
                    ),
                }
            ),
            0,
            "max_requester_set",
        ),
    ],
)
def test_the_first_broken_term_is_named(
    terms: GrantTerms, spec: TaskSpec, fee: int, term: str
) -> None:
    problem = violation(spec, terms, THEIRS, fee=fee)
    assert problem is not None and problem.term == term, problem


def test_a_value_column_is_retrieved_by_pir_and_by_the_lending_total_and_limit_check() -> None:
    holder = SpecInput(dataset="0x" + "22" * 32, org=2, column="phone", value_column="income")
    pir = parse_spec({"protocol": "simplepir", "requester": 1, "inputs": (MINE, holder)})
    aggregated = GrantTerms(
        protocols=("simplepir",), columns={"phone": ("join",), "income": ("aggregate",)}
    )
    problem = violation(pir, aggregated, holder, fee=0)
    assert problem is not None and problem.term == "columns" and "retrieve" in problem.message
    retrievable = aggregated.model_copy(
        update={"columns": {"phone": ("join",), "income": ("retrieve",)}}
    )
    assert violation(pir, retrievable, holder, fee=0) is None

    query = SpecInput(dataset="0x" + "11" * 32, org=1, column="phone", value_column="limit")
    lending = ("lending-total", "lending-exceeds")
    for protocol in lending:  # the limit check is the total by a binary search over the limit
        body = {"protocol": protocol, "requester": 1, "inputs": (query, holder), "dealer": 7}
        spec = parse_spec(body)
        for allowed in ("aggregate", "retrieve"):
            terms = GrantTerms(
                protocols=lending, columns={"phone": ("join",), "income": (allowed,)}
            )
            problem = violation(spec, terms, holder, fee=0)
            assert (problem is None) is (allowed == "retrieve"), (protocol, allowed, problem)
    defaults = default_terms(["stats"], ["phone", "income"])
    assert not set(lending) & set(defaults.protocols)


def test_only_the_allowed_dealer_deals() -> None:
    own = SpecInput(dataset="0x" + "11" * 32, org=1, column="amount")
    theirs = SpecInput(dataset="0x" + "22" * 32, org=2, column="amount")
    spec = parse_spec(
        {"protocol": "joint-stats", "requester": 1, "inputs": (own, theirs), "dealer": 7}
    )
    terms = GrantTerms(protocols=("joint-stats",), columns={"amount": ("aggregate",)}, dealer=9)
    problem = violation(spec, terms, theirs, fee=0)
    assert problem is not None and problem.term == "dealer"
    assert violation(spec, terms.model_copy(update={"dealer": 7}), theirs, fee=0) is None


def test_the_chain_carries_what_the_contracts_check() -> None:
    terms = GrantTerms(
        protocols=("ecdh", "joint-stats"),
        columns={"phone": ("join",)},
        price=Price(unit="call", wei=3),
        min_fee_wei=3,
    )
    chain = terms.chain_terms(expiry=100, max_uses=2)
    assert chain.kinds == Kind.PSI | Kind.STATS
    assert chain.protocols == 1 << PROTOCOL_IDS["ecdh"] | 1 << PROTOCOL_IDS["joint-stats"]
    assert (chain.dealer, chain.min_fee, chain.expiry, chain.max_uses) == (ANY_DEALER, 3, 100, 2)
    assert chain.parent_grant == bytes(32)  # derived under no grant
    derived = terms.model_copy(update={"parent_grant": "0x" + "ab" * 32})
    assert derived.chain_terms(expiry=100, max_uses=2).parent_grant == b"\xab" * 32
    assert GrantTerms.parse(terms.canonical_json()) == terms
    assert terms.max_set(1_000) is None
    assert (
        terms.model_copy(update={"max_requester_ratio": 0.5, "max_requester_set": 800}).max_set(
            1_000
        )
        == 500
    )


def test_rr22_and_kkrt_are_granted_apart_and_rr22_keeps_a_set_cap() -> None:
    kkrt_only = GrantTerms(protocols=("kkrt",), columns={"phone": ("join",)}, max_requester_set=5)
    rr22_only = kkrt_only.model_copy(update={"protocols": ("rr22",)})
    rr22 = _psi(protocol="rr22", output="requester")
    for spec, terms in ((rr22, kkrt_only), (_psi(protocol="kkrt"), rr22_only)):
        problem = violation(spec, terms, THEIRS, fee=0)
        assert problem is not None and problem.term == "protocols"
    assert violation(rr22, rr22_only, THEIRS, fee=0, sizes=(5, 10)) is None
    problem = violation(rr22, rr22_only, THEIRS, fee=0, sizes=(6, 10))
    assert problem is not None and problem.term == "max_requester_set"
    assert rr22_only.chain_terms(expiry=1, max_uses=1).protocols == 1 << 17
    assert "rr22" in default_terms(["psi"], ["phone"]).protocols


def test_default_terms_leave_out_the_union_and_a_column_needs_a_use() -> None:
    terms = default_terms(["psi"], ["phone", "segment"])
    assert "union3" not in terms.protocols and "ecdh" in terms.protocols
    assert terms.columns == {"phone": ("join",), "segment": ("join",)}
    with pytest.raises(ValidationError):
        GrantTerms(protocols=("ecdh",), columns={"phone": ()})


def test_terms_no_allowed_protocol_can_keep_are_told_apart() -> None:
    kkrt_only = GrantTerms(protocols=("kkrt",), columns={"phone": ("join",)}, min_result=10)
    assert kkrt_only.unenforceable() is not None
    assert kkrt_only.model_copy(update={"protocols": ("kkrt", "ecdh")}).unenforceable() is None
    union_capped = GrantTerms(
        protocols=("union3",), columns={"phone": ("join",)}, max_requester_set=9
    )
    assert union_capped.unenforceable() is not None


def test_a_column_named_in_two_roles_is_held_to_both_uses() -> None:
    """A key column also named as a feature kept only its last use: the join on a column
    granted for aggregates only went unchecked."""
    mine = SpecInput(dataset="0x" + "11" * 32, org=1, column="id", value_column="label")

    def vertical(column: str, features: list[str]) -> TaskSpec:
        theirs = SpecInput(dataset="0x" + "22" * 32, org=2, column=column, features=features)
        body = {"protocol": "vertical-lr", "requester": 1, "inputs": (mine, theirs), "dealer": 7}
        return parse_spec(body)

    aggregates = GrantTerms(
        protocols=("vertical-lr",), columns={"customer_id": ("aggregate",), "id": ("join",)}
    )
    for spec in (vertical("customer_id", ["customer_id"]), vertical("id", ["id"])):
        theirs = spec.inputs[1]
        assert column_uses(spec, theirs) == {theirs.column: ("join", "aggregate")}
        problem = violation(spec, aggregates, theirs, fee=0)
        assert problem is not None and problem.term == "columns", problem
    both = aggregates.model_copy(update={"columns": {"id": ("join", "aggregate")}})
    spec = vertical("id", ["id"])
    assert violation(spec, both, spec.inputs[1], fee=0) is None
