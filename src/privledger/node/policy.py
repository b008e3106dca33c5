"""Data classification policy (F17), as far as it is enforced today: the smallest group a joint
statistic may be released for, by the highest classification level among a task's inputs.

Level 1 is public, 4 is core data. A result over fewer rows than the threshold is suppressed inside
the secure computation (the data parties never learn whether it was).
"""

from __future__ import annotations

from collections.abc import Iterable

MIN_GROUP_SIZE = {1: 1, 2: 5, 3: 10, 4: 20}


def min_group_size(levels: Iterable[int]) -> int:
    """The release threshold for a task over datasets of these levels."""
    return max(MIN_GROUP_SIZE[level] for level in levels)
