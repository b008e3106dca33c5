"""Item 8 of issue 15: the keyword-PIR table's bucket sizes and slot order.

Bucket mode promises the holder learns only that a key is one of at least ``k`` held keys in its
bucket. With ``ceil(n / k)`` buckets the sizes were Poisson: for k = 8 about 4% of the buckets
held 3 keys or fewer. And one slot permutation per table put the record of rank ``r`` in its
bucket (the holder's insertion order) at the same slot in every bucket, so a found record's slot
told the querier its rank.
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from privledger.protocols.pir import keyword
from privledger.protocols.pir.keyword import KeywordTable

pytestmark = pytest.mark.privacy


def test_every_bucket_hides_at_least_k_held_keys() -> None:
    k = 8
    records = {f"acct-{i}".encode(): secrets.token_bytes(16) for i in range(20_000)}
    table = KeywordTable.build(records, mode="bucket", k=k, workers=1)
    sizes = np.array([len(table.bucket_keys(b)) for b in range(table.buckets)])
    # the old layout: ~4% of 2,500 buckets (about 100) with 3 keys or fewer
    assert sizes.min() >= k, f"{int(np.sum(sizes < k))} buckets hold fewer than {k} keys"


def test_a_records_slot_does_not_reveal_its_rank_in_the_holders_order() -> None:
    buckets, cap = 2000, 16
    # every bucket holds 4 records, inserted in the holder's order: ranks 0..3
    where = np.repeat(np.arange(buckets, dtype=np.int64), 4)
    slots = keyword._positions(where, buckets, cap)
    first = slots[0::4]  # the slot of the rank-0 record of every bucket
    common = np.bincount(first, minlength=cap).max() / buckets
    # one permutation per table: every rank-0 record at the same slot (common = 1.0); with a
    # permutation per bucket each slot holds about 1/16 of them (sd ~0.005)
    assert common < 0.1, f"{common:.2f} of the rank-0 records share one slot"
    per_bucket = slots.reshape(buckets, 4)
    assert all(len(set(row.tolist())) == 4 for row in per_bucket)  # distinct slots per bucket
