"""What every protocol runner gets from the worker, and how it refuses a task."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from privledger.evm.contracts import FailureReason, Task
from privledger.node.context import NodeContext
from privledger.node.release import LastMessages
from privledger.node.runners.caps import CappedChannel
from privledger.node.spec import SpecInput, TaskSpec
from privledger.node.terms import GrantTerms
from privledger.protocols.channel import Channel
from privledger.protocols.mpc.sharing import Party

InputForm = Literal["rows", "file", "column"]
"""How a runner takes this party's input: rows of Python values, the file itself (a protocol
that streams it), or the key column as an Arrow array."""

RunOutput = tuple[list[str] | Path | None, int]
"""This party's output -- items, its result file (:mod:`privledger.node.results`) when a PSI
streamed it, or None when it learns none -- and the units its providers are paid for."""


class TaskRefused(Exception):
    """The worker will not run this task; ``reason`` is the code recorded on chain."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Withheld:
    """The usage units a provider anchors when, after it recorded the delivery of the
    requester's output, its own part never comes (:mod:`privledger.node.release`): what it
    answered, as its runner learns it -- the set size the requester announced, its own rows, the
    aligned rows -- and 0 until then."""

    units: int = 0


@dataclass(frozen=True)
class Run:
    """One party's view of a running task: its rows and a channel to every other participant."""

    node: NodeContext
    task: Task
    spec: TaskSpec
    channels: dict[int, Channel]
    rows: list[tuple[bytes, ...]]
    source: Path | None = None  # the input file itself, for protocols that stream it
    min_release: int = 1  # the fewest rows a released result may cover (policies, terms)
    column: Any = None  # the key column as an Arrow array, for protocols that take one
    terms: GrantTerms | None = None  # the terms of the grant on this provider's input
    # peers the protocol finished without (a horizontal FL client that dropped out): their
    # channels are abandoned, not finished, and the task completes without them on chain
    dropped: set[int] = field(default_factory=set)
    # a provider's channels, holding its messages until its anchor (None for other parties)
    held: LastMessages | None = None
    withheld: Withheld = field(default_factory=Withheld)

    @property
    def org(self) -> int:
        return self.node.org_id

    @property
    def timeout(self) -> float:
        return self.node.settings.channel_timeout_s

    @property
    def is_requester(self) -> bool:
        return self.spec.requester == self.org

    @property
    def role(self) -> Literal["requester", "provider"]:
        return "requester" if self.is_requester else "provider"

    @property
    def keys(self) -> list[bytes]:
        """The first column of this party's rows (the key column of set tasks)."""
        return [row[0] for row in self.rows]

    @property
    def mine(self) -> SpecInput | None:
        return next((item for item in self.spec.inputs if item.org == self.org), None)

    @property
    def owners(self) -> list[int]:
        return [item.org for item in self.spec.inputs]

    def check_release(self, size: int, what: str) -> None:
        """Refuse to release a result over fewer rows than the inputs' policies allow (F17)."""
        if size < self.min_release:
            raise TaskRefused(
                FailureReason.POLICY_VIOLATION,
                f"{size} {what} is below the release threshold {self.min_release} of the "
                "provided data's classification levels",
            )

    def check_requester_set(self, size: int, provider_rows: int) -> None:
        """Refuse, as a provider, a requester set larger than the grant's terms allow."""
        cap = None if self.terms is None else self.terms.max_set(provider_rows)
        if cap is not None and size > cap:
            raise TaskRefused(
                FailureReason.TERMS_VIOLATION,
                f"term 'max_requester_set': the requester brings {size} keys, at most {cap}",
            )

    def only_channel(self) -> Channel:
        (channel,) = self.channels.values()
        return channel

    def capped_channel(self, provider_rows: int) -> Channel:
        """The only channel; a provider's refuses a requester set over the terms' cap when the
        requester's protocol header announces it (:mod:`privledger.node.runners.caps`)."""
        channel = self.only_channel()
        if self.is_requester:
            return channel
        return CappedChannel(channel, lambda size: self._answering(size, provider_rows))

    def _answering(self, size: int, provider_rows: int) -> None:
        """The requester announced ``size`` keys: refused over the cap, else what this provider
        answers (its units if the requester then withholds its part)."""
        self.check_requester_set(size, provider_rows)
        self.withheld.units = size

    @property
    def delivered(self) -> bool:
        """Whether this provider recorded on the ledger that it handed the requester its output
        before it could anchor (:mod:`privledger.node.release`)."""
        return self.held is not None and self.held.delivered

    def party(self) -> Party:
        """This node as an MPC party: data parties indexed in input order, plus the dealer."""
        dealer = self.spec.dealer_org
        if dealer is None:
            raise TaskRefused(FailureReason.SPEC_MISMATCH, "an MPC task without a dealer")
        owners = self.owners
        return Party(
            owners.index(self.org),
            {owners.index(org): ch for org, ch in self.channels.items() if org != dealer},
            dealer=self.channels[dealer],
            timeout=self.timeout,
        )
