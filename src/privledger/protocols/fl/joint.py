"""Joint prediction with a vertical model whose parts stay at the parties that trained it.

The rows to score are aligned beforehand (PSI; row ``k`` is the same id at every party that
holds rows). Each model party holds its part of the model -- for secret-shared logistic
regression, additive shares of every weight (:class:`.vertical.SharedLrScorer`) -- and its own
feature columns of the aligned rows. A model plugs in through :class:`JointScorer`: its
``shared_scores`` turns this party's columns into this party's additive shares of every row's
score, without opening anything. The group of model parties then releases to the requester
(which may sit outside the group) only what the task allows:

- ``scores``: the scores, opened to the requester alone (it applies the model's link function).
  Only for a requester that holds the aligned ids itself.
- ``ids``: for a public probability threshold ``t``, the bits ``[score >= score_at(t)]`` by
  secure comparison (:func:`.mpc.compare.greater_equal`), never opened to a model party. A
  requester holding the aligned ids receives the bits. Otherwise one model party, the *id
  holder*, encodes each aligned id in :data:`ID_WORDS` ring words (the id, a 0x80 marker,
  zeros); the group multiplies them by the shared bits and opens the products to the requester:
  the id of every row above the threshold, zeros elsewhere.

What each party learns (semi-honest parties, the trusted non-colluding dealer of
:mod:`.mpc.sharing`): a model party, nothing beyond its own columns and the row count -- every
value opened among the group is masked by dealer randomness, and no partial score, score or bit
is opened to it. The requester learns the released output and the row count; with output
``ids`` and ids it does not hold, also the positions of the released ids in the aligned order
(the id holder shuffles that order with ``secrets`` before, so positions carry nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from privledger.protocols.mpc.compare import greater_equal
from privledger.protocols.mpc.ring import U64, decode_fixed, encode_fixed
from privledger.protocols.mpc.sharing import Party, agree, bits_to_arith, mul, open_to, session

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
JointOutput = Literal["scores", "ids"]
ID_WORDS: Final = 8  # an id of up to 63 bytes, its 0x80 marker and zero padding
_MARKER: Final = b"\x80"


class JointScorer(Protocol):
    """One party's part of a vertical model, as joint prediction uses it."""

    @property
    def group(self) -> tuple[int, ...]:
        """The model parties' indices (the mesh computing the scores)."""
        ...

    @property
    def frac_bits(self) -> int:
        """Fractional bits of the fixed-point scores."""
        ...

    def shared_scores(self, party: Party, features: F64) -> U64:
        """This party's additive shares of every row's score, from its own columns."""
        ...

    def score_at(self, probability: float) -> float:
        """The score at which the model's probability reaches ``probability``."""
        ...

    def probability(self, scores: F64) -> F64:
        """Probabilities from opened scores (the link function)."""
        ...


@dataclass(frozen=True)
class Released:
    """What the requester receives: per row its probability (``scores``), or the ids above
    the threshold (``ids``), or, when the requester holds the ids, the rows above it."""

    probabilities: F64 | None = None
    above: npt.NDArray[np.bool_] | None = None
    ids: tuple[bytes, ...] | None = None


def encode_ids(ids: list[bytes]) -> U64:
    """The ids as :data:`ID_WORDS` words each (row-major): id, 0x80, zeros."""
    width = 8 * ID_WORDS
    if any(len(item) >= width for item in ids):
        raise ValueError(f"an id longer than {width - 1} bytes cannot be released by value")
    padded = b"".join((item + _MARKER).ljust(width, b"\0") for item in ids)
    return np.frombuffer(padded, "<u8").astype(np.uint64)


def decode_ids(values: U64) -> tuple[bytes, ...]:
    """The ids among opened :func:`encode_ids` words; an all-zero row is no id."""
    width = 8 * ID_WORDS
    raw = values.astype("<u8").tobytes()
    found = []
    for start in range(0, len(raw), width):
        row = raw[start : start + width].rstrip(b"\0")
        if row:
            if not row.endswith(_MARKER):
                raise ValueError("an opened id lacks its marker")
            found.append(row[:-1])
    return tuple(found)


def predict_joint(
    party: Party,
    scorer: JointScorer,
    features: F64 | None,
    *,
    rows: int,
    requester: int,
    output: JointOutput,
    threshold: float | None = None,
    requester_holds_ids: bool,
    id_holder: int | None = None,
    ids: list[bytes] | None = None,
) -> Released | None:
    """One party's side of a joint prediction; the requester gets :class:`Released`, every
    other party ``None``. Model parties pass their ``scorer`` and ``features`` (``rows`` x own
    columns, possibly none); a requester outside the model group runs :func:`receive_joint`. With
    output ``ids`` and ``requester_holds_ids`` false, ``id_holder`` (a model party) passes the
    aligned ``ids``."""
    if output == "ids" and (threshold is None or not 0.0 < threshold < 1.0):
        raise ValueError("output ids takes a probability threshold strictly between 0 and 1")
    if output == "scores" and not requester_holds_ids:
        raise ValueError("scores go only to a requester that holds the aligned ids")
    with session(party, "joint-predict"):
        group = scorer.group
        by_value = output == "ids" and not requester_holds_ids
        if by_value and id_holder not in group:
            raise ValueError("ids released by value need an id holder in the model group")
        agree(
            party,
            group,
            {
                "protocol": "fl/joint-predict/v1",
                "rows": rows,
                "requester": requester,
                "output": output,
                "threshold": threshold,
                "id_holder": id_holder if by_value else None,
            },
        )
        own = np.zeros((rows, 0)) if features is None else np.asarray(features, dtype=np.float64)
        if own.shape[0] != rows:
            raise ValueError(f"{own.shape[0]} feature rows for {rows} aligned rows")
        scores = scorer.shared_scores(party, own)
        if output == "scores":
            opened = open_to(party, group, scores, requester)
            if opened is None:
                return None
            return Released(
                probabilities=scorer.probability(decode_fixed(opened, scorer.frac_bits))
            )
        assert threshold is not None
        limit = encode_fixed(np.array([scorer.score_at(threshold)]), scorer.frac_bits)
        bits = greater_equal(party, group, scores, limit, holder=group[0])
        if not by_value:
            opened = open_to(party, group, bits & np.uint64(1), requester, xor=True)
            return None if opened is None else Released(above=opened.astype(np.bool_))
        gate = np.repeat(bits_to_arith(party, group, bits), ID_WORDS)
        if party.index == id_holder:
            if ids is None or len(ids) != rows:
                raise ValueError("the id holder passes one id per aligned row")
            words = encode_ids(ids)
        else:
            words = np.zeros(rows * ID_WORDS, dtype=np.uint64)
        released = open_to(party, group, mul(party, group, gate, words), requester)
        return None if released is None else Released(ids=decode_ids(released))


def receive_joint(
    party: Party,
    group: tuple[int, ...],
    *,
    rows: int,
    output: JointOutput,
    requester_holds_ids: bool,
    frac_bits: int,
    probability: Callable[[F64], F64],
) -> Released:
    """The requester outside the model ``group``: it receives the released output alone
    (``frac_bits`` and ``probability``, the model's link, read the opened scores)."""
    if party.index in group:
        raise ValueError("a model party runs predict_joint")
    with session(party, "joint-predict"):
        if output == "scores":
            if not requester_holds_ids:
                raise ValueError("scores go only to a requester that holds the aligned ids")
            opened = _gather(party, group, rows, xor=False)
            return Released(probabilities=probability(decode_fixed(opened, frac_bits)))
        if requester_holds_ids:
            return Released(above=_gather(party, group, rows, xor=True).astype(np.bool_))
        return Released(ids=decode_ids(_gather(party, group, rows * ID_WORDS, xor=False)))


def _gather(party: Party, group: tuple[int, ...], count: int, *, xor: bool) -> U64:
    opened = open_to(party, group, np.zeros(count, dtype=np.uint64), party.index, xor=xor)
    assert opened is not None  # this party is the target
    return opened
