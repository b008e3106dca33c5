"""Data classification policies (F17): per classification level, which computation kinds a
dataset may serve in another organisation's task, the smallest result that may be released over
it, and whether a result may go to the provider as well as the requester. (What a requester does
with its own data -- say, a level-4 query key in an anonymous lookup -- is its own call.)

Level 1 is public, 4 is core data. Defaults (:data:`DEFAULT_POLICIES`):

=====  =========================  ===========  ====================
level  kinds                      min result   output to provider
=====  =========================  ===========  ====================
1      psi, pir, stats, fl        1            yes
2      psi, pir, stats, fl        5            yes
3      psi, stats, fl             10           no
4      stats, fl                  20           no
=====  =========================  ===========  ====================

A node may override them with a JSON file (``PRIVLEDGER_POLICY_FILE``), e.g.
``{"3": {"kinds": ["stats"], "minResult": 50, "outputToProvider": false}}``; levels it does not
name keep the defaults. Every node enforces its own policy for the input it provides before it
runs a task (kind and release rules), and the release threshold over the provided inputs' levels
once the result size is known -- PSI intersections (and A∩B behind a difference), three-party
intersections, aligned rows of vertical FL, the group of a joint statistic (inside the secure
computation). A violation fails the task on chain with ``POLICY_VIOLATION``
before anything is released. The node that learns the result enforces the threshold for
everyone's data, and a provider enforces its own where the protocol lets it against a requester
that skips it: ECDH-PSI's cardinality phase, the row alignment of vertical FL (a provider learns
the aligned rows first), and joint statistics over its own rows and bins (``node/runners``;
docs/grants.md lists the protocols that cannot).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privledger.wire.numerals import ascii_number

KINDS = ("psi", "pir", "stats", "fl")
LEVELS = (1, 2, 3, 4)


class PolicyError(ValueError):
    """A policy file that cannot be used; the message says why."""


@dataclass(frozen=True)
class LevelPolicy:
    kinds: tuple[str, ...]
    min_result: int
    output_to_provider: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "kinds": list(self.kinds),
            "minResult": self.min_result,
            "outputToProvider": self.output_to_provider,
        }


DEFAULT_POLICIES: dict[int, LevelPolicy] = {
    1: LevelPolicy(KINDS, 1, True),
    2: LevelPolicy(KINDS, 5, True),
    3: LevelPolicy(("psi", "stats", "fl"), 10, False),
    4: LevelPolicy(("stats", "fl"), 20, False),
}


@dataclass(frozen=True)
class Policies:
    levels: Mapping[int, LevelPolicy]

    @classmethod
    def load(cls, path: Path | None) -> Policies:
        """The defaults, overridden level by level by the JSON file at ``path``."""
        if path is None:
            return cls(dict(DEFAULT_POLICIES))
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PolicyError(f"cannot read the policy file {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise PolicyError("a policy file maps levels to policies")
        levels = dict(DEFAULT_POLICIES)
        for key, value in raw.items():
            level = ascii_number(str(key)) or 0  # "٣" is no spelling of 3 here
            if level not in LEVELS or not isinstance(value, dict):
                raise PolicyError(f"unknown level {key!r}; levels are 1 to 4")
            kinds = tuple(value.get("kinds", levels[level].kinds))
            min_result = value.get("minResult", levels[level].min_result)
            to_provider = value.get("outputToProvider", levels[level].output_to_provider)
            if not set(kinds) <= set(KINDS) or not isinstance(min_result, int) or min_result < 1:
                raise PolicyError(f"level {level}: kinds from {KINDS}, minResult >= 1")
            if not isinstance(to_provider, bool):
                raise PolicyError(f"level {level}: outputToProvider is true or false")
            levels[level] = LevelPolicy(kinds, min_result, to_provider)
        return cls(levels)

    def violation(self, level: int, kind: str, output: str) -> str | None:
        """Why a task of ``kind`` releasing to ``output`` may not use data of ``level``."""
        policy = self.levels[level]
        if kind not in policy.kinds:
            return f"level-{level} data allows only {', '.join(policy.kinds)} tasks"
        if output == "both" and not policy.output_to_provider:
            return f"level-{level} data releases results to the requester only"
        return None

    def min_result(self, levels: Iterable[int]) -> int:
        """The release threshold for a result over datasets of these levels."""
        return max(self.levels[level].min_result for level in levels)

    def to_json(self) -> dict[str, Any]:
        return {str(level): policy.to_json() for level, policy in sorted(self.levels.items())}
