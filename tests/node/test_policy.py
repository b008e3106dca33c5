from __future__ import annotations

import json
from pathlib import Path

import pytest

from privledger.node.policy import DEFAULT_POLICIES, Policies, PolicyError


def test_defaults_restrict_core_data_to_aggregates() -> None:
    policies = Policies.load(None)
    assert policies.violation(1, "pir", "both") is None
    assert policies.violation(4, "psi", "requester") == "level-4 data allows only stats, fl tasks"
    assert (
        policies.violation(3, "psi", "both")
        == "level-3 data releases results to the requester only"
    )
    assert policies.violation(3, "pir", "requester") is not None
    assert policies.min_result([1, 2]) == 5 and policies.min_result([4, 1]) == 20
    assert policies.to_json()["4"] == {
        "kinds": ["stats", "fl"],
        "minResult": 20,
        "outputToProvider": False,
    }


def test_a_policy_file_overrides_named_levels_only(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"2": {"kinds": ["stats"], "minResult": 50}}))
    policies = Policies.load(path)
    assert policies.levels[2].kinds == ("stats",) and policies.levels[2].min_result == 50
    assert policies.levels[2].output_to_provider is True  # unnamed fields keep the default
    assert policies.levels[3] == DEFAULT_POLICIES[3]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[1, 2]",
        json.dumps({"5": {}}),
        json.dumps({"1": {"kinds": ["mining"]}}),
        json.dumps({"1": {"minResult": 0}}),
        json.dumps({"1": {"outputToProvider": "yes"}}),
    ],
)
def test_bad_policy_files_are_clear_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "policy.json"
    path.write_text(content)
    with pytest.raises(PolicyError):
        Policies.load(path)
    with pytest.raises(PolicyError, match="cannot read"):
        Policies.load(tmp_path / "missing.json")
