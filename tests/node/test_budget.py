"""The privacy budget of a DP training task, from its spec, and grant terms that bound it."""

from __future__ import annotations

import dp_accounting
import pytest
from dp_accounting.rdp import rdp_privacy_accountant
from pydantic import ValidationError

from privledger.node.budget import training_epsilon, vertical_budget
from privledger.node.spec import SpecInput, TaskSpec, VerticalLrSpec, parse_spec
from privledger.node.terms import GrantTerms, violation

LABELS = SpecInput(dataset="0x" + "11" * 32, org=1, column="id", value_column="fraud")
CARRIER = SpecInput(dataset="0x" + "22" * 32, org=2, column="id", features=("calls", "days"))
BANK = SpecInput(dataset="0x" + "33" * 32, org=3, column="id", features=("balance",))
TERMS = {
    "protocols": ("vertical-lr",),
    "columns": {"id": ("join",), "calls": ("aggregate",), "days": ("aggregate",)},
}


def _vertical(*inputs: SpecInput, **fields: object) -> TaskSpec:
    return parse_spec(
        {"protocol": "vertical-lr", "requester": 1, "dealer": 9, "inputs": inputs, **fields}
    )


def _rdp_epsilon(noise_multiplier: float, count: int, delta: float) -> float:
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), count)
    return float(accountant.get_epsilon(delta))


def test_the_budget_is_dp_accounting_s_over_every_epoch_of_every_model() -> None:
    dp = {"noise_multiplier": 3.0, "clip_norm": 2.0, "delta": 1e-6}
    two = _vertical(LABELS, CARRIER, rounds=50, dp=dp)
    assert training_epsilon(two) == pytest.approx(_rdp_epsilon(3.0, 50, 1e-6), rel=1e-12)
    # three parties: the joint model and the label holder's two pairs (Shapley values)
    three = _vertical(LABELS, CARRIER, BANK, rounds=50, dp=dp)
    assert isinstance(three, VerticalLrSpec)
    budget = vertical_budget(three)
    assert budget["trainings"] == 3 and budget["epochs"] == 50
    assert budget["epsilon"] == pytest.approx(_rdp_epsilon(3.0, 150, 1e-6), rel=1e-12)
    assert budget["label_epsilon"] == pytest.approx(_rdp_epsilon(6.0, 150, 1e-6), rel=1e-12)
    assert training_epsilon(_vertical(LABELS, CARRIER)) is None


def test_vertical_dp_beyond_the_fixed_point_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="fixed-point range"):
        _vertical(LABELS, CARRIER, dp={"noise_multiplier": 500, "clip_norm": 5})


def test_terms_with_a_maximum_epsilon_refuse_a_task_without_dp_or_spending_more() -> None:
    terms = GrantTerms(**TERMS, max_epsilon=8.0)  # type: ignore[arg-type]
    private = _vertical(LABELS, CARRIER, rounds=20, dp={"noise_multiplier": 4.0})
    assert violation(private, terms, CARRIER, fee=0) is None
    without = violation(_vertical(LABELS, CARRIER, rounds=20), terms, CARRIER, fee=0)
    assert without is not None and without.term == "max_epsilon"
    costly = _vertical(LABELS, CARRIER, rounds=20, dp={"noise_multiplier": 0.5})
    spent = violation(costly, terms, CARRIER, fee=0)
    assert spent is not None and spent.term == "max_epsilon" and "spends epsilon" in spent.message


def test_a_maximum_epsilon_is_in_the_hash_only_when_set() -> None:
    plain = GrantTerms(**TERMS)  # type: ignore[arg-type]
    assert "max_epsilon" not in plain.canonical_json()  # older grants keep their hash
    bounded = GrantTerms(**TERMS, max_epsilon=2.0)  # type: ignore[arg-type]
    assert GrantTerms.parse(bounded.canonical_json()) == bounded
    assert bounded.hash != plain.hash
    psi_only = GrantTerms(protocols=("ecdh",), columns={"id": ("join",)}, max_epsilon=2.0)
    assert psi_only.unenforceable() == "none of ['ecdh'] trains with differential privacy"


def test_a_horizontal_budget_holds_against_an_aggregator_adding_no_noise_to_its_own_rows() -> None:
    """Each client's noise is sized so that any t of them (t = 3 with three clients) sum to the
    spec's multiplier; a requester training its own rows whose node adds none left sqrt(2/3)
    of it on the sums, and the providers checked max_epsilon at the spec's multiplier."""

    def client(org: int) -> SpecInput:
        dataset = "0x" + f"{org:02x}" * 32
        return SpecInput(
            dataset=dataset, org=org, column="id", features=("x",), value_column="label"
        )

    dp = {"noise_multiplier": 1.0, "delta": 1e-5}
    body = {"protocol": "horizontal-lr", "requester": 1, "rounds": 10, "dp": dp}
    trains = parse_spec({**body, "inputs": (client(1), client(2), client(3))})
    assert training_epsilon(trains) == pytest.approx(
        _rdp_epsilon((2 / 3) ** 0.5, 10, 1e-5), rel=1e-12
    )
    aggregates = parse_spec({**body, "inputs": (client(2), client(3), client(4))})
    assert training_epsilon(aggregates) == pytest.approx(_rdp_epsilon(1.0, 10, 1e-5), rel=1e-12)
    four = parse_spec({**body, "inputs": (client(1), client(2), client(3), client(4))})
    assert training_epsilon(four) == training_epsilon(aggregates)  # three others: t = 3
