"""Settlement of vertical-gbdt by contribution (node/runners/gbdt.py, node/terms.py): a feature
owner under terms priced by ``contribution`` anchors its aligned rows times its share of the
model's splits, rounded up; two feature owners find out whether they were sent the same trees;
the new price unit leaves older terms' hashes as they were."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from privledger.node.runners.gbdt import contribution_units, shapes_agree
from privledger.node.terms import GrantTerms
from privledger.protocols.channel import channel_pair

TERMS = {"protocols": ["vertical-gbdt"], "columns": {"id": ["join"], "f0": ["aggregate"]}}


@pytest.mark.parametrize(
    ("rows", "own", "total", "units"),
    [
        (300, 6, 6, 300),  # the owner's columns carry the whole model: paid in full
        (300, 0, 6, 0),  # the model never used its columns
        (300, 2, 6, 100),
        (300, 1, 7, 43),  # 42.86 rounds up: a split is never paid nothing
        (1, 1, 310, 1),
        (300, 0, 0, 0),  # no split at all (every tree a single leaf)
        (4_000_000_000, 3, 4, 3_000_000_000),  # exact in integers
    ],
)
def test_units_follow_the_share_of_the_splits(rows: int, own: int, total: int, units: int) -> None:
    assert contribution_units(rows, own, total) == units


def test_three_parties_split_the_rows_by_their_splits() -> None:
    # the label holder's 2 splits lower both feature owners' units but not their ratio
    counts = {"label holder": 2, "telecom": 6, "bank-a": 3}
    total = sum(counts.values())
    assert [contribution_units(240, counts[o], total) for o in ("telecom", "bank-a")] == [131, 66]


@pytest.mark.parametrize(("own", "total"), [(-1, 3), (4, 3)])
def test_a_count_that_is_not_a_share_is_refused(own: int, total: int) -> None:
    with pytest.raises(ValueError, match="some of the model's splits"):
        contribution_units(10, own, total)


def test_the_contribution_unit_leaves_older_terms_hashes_alone() -> None:
    older = GrantTerms.model_validate({**TERMS, "price": {"unit": "matched_row", "wei": 5}})
    # the hash these terms had before the unit "contribution" existed
    assert older.hash.hex() == "0c03e9397fb5e5bf183741a30828f665087eca3e6494740d22e183117d39a81f"
    priced = GrantTerms.model_validate({**TERMS, "price": {"unit": "contribution", "wei": 5}})
    assert '"price":{"unit":"contribution","wei":5}' in priced.canonical_json()
    assert GrantTerms.parse(priced.canonical_json()).hash == priced.hash != older.hash


@pytest.mark.parametrize(("theirs", "agreed"), [("ab" * 32, True), ("cd" * 32, False)])
def test_two_feature_owners_compare_the_trees_they_were_sent(theirs: str, agreed: bool) -> None:
    mine, other = channel_pair()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(shapes_agree, other, theirs, 5.0)
        assert shapes_agree(mine, "ab" * 32, 5.0) is agreed
        assert answer.result() is agreed
