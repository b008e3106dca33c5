"""Every protocol a node runs with a provider role, run in memory with each provider's channels
held as its node holds them (:class:`.node.release.LastMessages`): the requester must not be
able to finish -- hold its output -- before the providers' last messages are released (after
their anchor) unless a provider first recorded a delivery on the ledger, while the requester had
not finished yet. A protocol that hands the requester its output in messages that leave before a
provider's last receive must say so (``Channel.delivering``) before them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from privledger.node.release import LastMessages
from privledger.protocols.channel import Channel, channel_pair
from privledger.protocols.fl import federation, gbdt, joint, vertical
from privledger.protocols.fl.horizontal import ClientData
from privledger.protocols.mpc.dealer import Dealer
from privledger.protocols.mpc.lending import LoanBook, multi_lending_check
from privledger.protocols.mpc.sharing import Party
from privledger.protocols.mpc.stats import joint_stats
from privledger.protocols.pir.keyword import KeywordTable, run_holder, run_querier
from privledger.protocols.psi import multiparty

TIMEOUT = 20.0
SETTLE_S = 0.3  # after the providers returned: long enough for a requester with its output
DEALER = -1  # the dealer's key among a party's channels


class Ledger:
    """The providers' ``record_delivery``: each recording and whether the requester had
    finished by then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.recorded: list[bool] = []
        self.requester: Future[Any] | None = None

    def record(self) -> float:
        time.sleep(0.2)  # a requester already holding its output finishes meanwhile
        with self._lock:
            self.recorded.append(self.requester is not None and self.requester.done())
        return time.monotonic() + 60


@dataclass(frozen=True)
class Seen:
    early: bool  # the requester had finished when the first provider had (before any anchor)
    recorded: list[bool]  # per delivery recording: had the requester finished by then?
    result: Any  # the requester's


Provider = tuple[Mapping[int, Channel], Callable[[dict[int, Channel]], object]]


def watch(requester: Callable[[], object], providers: Sequence[Provider]) -> Seen:
    """Run the requester and every provider, its channels held; as its node does, a provider's
    held messages are released once its protocol returned (after its anchor). When the first
    provider returns, see whether the requester had finished: before any anchor."""
    ledger = Ledger()
    held = [LastMessages(channels, record_delivery=ledger.record) for channels, _ in providers]
    early = None
    with ThreadPoolExecutor(1 + len(providers)) as pool:
        ledger.requester = pool.submit(requester)
        runs = {pool.submit(work, h.views): h for h, (_, work) in zip(held, providers, strict=True)}
        for run in as_completed(runs, timeout=TIMEOUT):
            run.result()
            if early is None:
                time.sleep(SETTLE_S)
                early = ledger.requester.done()
            runs[run].release()
        result = ledger.requester.result(timeout=TIMEOUT)
    assert early is not None
    return Seen(early, list(ledger.recorded), result)


def assert_bound(seen: Seen) -> None:
    """The detector: the requester could not finish before the release, or a delivery was
    recorded first, while it had not finished."""
    assert not seen.early or (seen.recorded and not seen.recorded[0]), seen


def assert_last_burst(seen: Seen) -> None:
    """Stronger: the output is in the providers' last burst, so nothing needed recording."""
    assert not seen.early and seen.recorded == [], seen


# --- PSI variants ------------------------------------------------------------------------------


def _items(lo: int, hi: int) -> list[bytes]:
    return [b"id-%d" % i for i in range(lo, hi)]


def test_difference_gives_the_requester_its_output_in_the_last_burst() -> None:
    a, b = channel_pair()
    x, y = _items(0, 40), _items(20, 70)
    seen = watch(
        lambda: multiparty.run_difference(a, x, role="requester", timeout=TIMEOUT),
        [({1: b}, lambda v: multiparty.run_difference(v[1], y, role="provider", timeout=TIMEOUT))],
    )
    assert_last_burst(seen)
    assert seen.result.difference == sorted(_items(0, 20))


def test_membership_gives_the_answer_in_the_last_burst() -> None:
    a, b = channel_pair()
    seen = watch(
        lambda: multiparty.query_membership(a, b"id-5", timeout=TIMEOUT),
        [({1: b}, lambda v: multiparty.answer_membership(v[1], _items(0, 30), timeout=TIMEOUT))],
    )
    assert_last_burst(seen)
    assert seen.result.member


SETS = [_items(0, 40), _items(10, 50), _items(20, 60)]


@pytest.mark.parametrize("operation", ["intersection", "union"])
def test_three_party_output_is_in_the_members_last_bursts(operation: str) -> None:
    mesh = multiparty.local_channels([0, 1, 2])

    def party(i: int) -> Callable[[Mapping[int, Channel]], multiparty.MultiPartyResult]:
        if operation == "intersection":
            return lambda p: multiparty.run_intersection(i, p, SETS[i], leader=0, timeout=TIMEOUT)
        return lambda p: multiparty.run_union(i, p, SETS[i], receiver=0, timeout=TIMEOUT)

    seen = watch(lambda: party(0)(mesh[0]), [(mesh[i], party(i)) for i in (1, 2)])
    assert_last_burst(seen)
    expected = set(SETS[0]) & set(SETS[1]) & set(SETS[2])
    if operation == "union":
        expected = set(SETS[0]) | set(SETS[1]) | set(SETS[2])
    assert set(seen.result.items) == expected


def test_a_three_party_alignment_records_the_delivery_before_the_ids_reach_the_requester() -> None:
    """Vertical tasks align their rows by the three-party intersection at a provider, which sends
    the common ids, once it checked them, to the other provider, which checks them and sends them
    on to the requester (``node.runners.fl._aligned_ids``); training goes on after that, so the
    provider that hands the requester the ids must record the delivery before they leave."""
    mesh = multiparty.local_channels([0, 1, 2])

    def requester() -> bytes:
        multiparty.run_intersection(2, mesh[2], SETS[2], leader=0, timeout=TIMEOUT)
        common = mesh[2][1].recv(TIMEOUT)
        mesh[2][1].send(b"training")
        return common

    def leader(peers: dict[int, Channel]) -> None:
        common = multiparty.run_intersection(0, peers, SETS[0], leader=0, timeout=TIMEOUT).items
        peers[1].send(b"\n".join(common))

    def member(peers: dict[int, Channel]) -> None:
        multiparty.run_intersection(1, peers, SETS[1], leader=0, timeout=TIMEOUT)
        common = peers[0].recv(TIMEOUT)
        peers[2].delivering()
        peers[2].send(common)
        assert peers[2].recv(TIMEOUT) == b"training"

    seen = watch(requester, [(mesh[0], leader), (mesh[1], member)])
    assert_bound(seen)
    assert seen.recorded == [False]
    assert sorted(seen.result.split(b"\n")) == sorted(_items(20, 40))


# --- keyword PIR -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pir", "bucket"])
def test_keyword_pir_answers_in_the_holders_last_burst(mode: Any) -> None:
    table = KeywordTable.build(
        {b"k%d" % i: b"value-%03d" % i for i in range(64)}, mode=mode, workers=1
    )
    a, b = channel_pair()
    keys = [b"k3", b"k60", b"absent"]
    seen = watch(
        lambda: run_querier(a, keys, mode=mode, timeout=TIMEOUT),
        [({1: b}, lambda v: run_holder(v[1], table, timeout=TIMEOUT))],
    )
    assert_last_burst(seen)
    assert list(seen.result.values) == [b"value-003", b"value-060", None]


# --- secret sharing: joint statistics, multi-lending -------------------------------------------


class Mesh:
    """``size`` parties pairwise connected in memory, each with a channel to a serving dealer;
    ``channels[i]`` holds party ``i``'s channels (the dealer's under :data:`DEALER`), as a
    provider's node would hold them."""

    def __init__(self, size: int) -> None:
        self.channels: list[dict[int, Channel]] = [{} for _ in range(size)]
        self._all: list[Channel] = []
        for i in range(size):
            for j in range(i + 1, size):
                self.channels[i][j], self.channels[j][i] = channel_pair()
        ends = {}
        for i in range(size):
            self.channels[i][DEALER], ends[i] = channel_pair()
        self._all = [c for channels in self.channels for c in channels.values()]
        self._all += list(ends.values())
        self.dealer = Dealer(ends)
        self.dealer.serve()

    @staticmethod
    def party(index: int, channels: Mapping[int, Channel]) -> Party:
        peers = {j: c for j, c in channels.items() if j != DEALER}
        return Party(index, peers, dealer=channels[DEALER], timeout=TIMEOUT)

    def watch(self, work: Callable[[Party], object], requester: int = 0) -> Seen:
        """``work`` for every party; all but ``requester`` are providers."""
        others = [i for i in range(len(self.channels)) if i != requester]
        try:
            return watch(
                lambda: work(self.party(requester, self.channels[requester])),
                [(self.channels[i], self._provider(i, work)) for i in others],
            )
        finally:
            for channel in self._all:
                channel.close()
            self.dealer.join(5.0)

    def _provider(
        self, index: int, work: Callable[[Party], object]
    ) -> Callable[[dict[int, Channel]], object]:
        return lambda views: work(self.party(index, views))


def test_joint_stats_open_to_the_requester_in_the_last_burst() -> None:
    values = [np.arange(6, dtype=float), np.arange(10, 16, dtype=float), np.ones(5)]

    def work(party: Party) -> object:
        return joint_stats(
            party, values[party.index], requester=0, min_group_size=2, histogram_edges=(0, 8, 16)
        )

    seen = Mesh(3).watch(work)
    assert_last_burst(seen)
    assert seen.result.count == 17


@pytest.mark.parametrize("mode", ["total", "exceeds"])
def test_multi_lending_opens_to_the_requester_in_the_last_burst(mode: Any) -> None:
    books = [LoanBook.from_records({"alice": 30, "bob": 2}), LoanBook.from_records({"alice": 5})]

    def work(party: Party) -> object:
        if party.index == 0:
            limit = 20 if mode == "exceeds" else None
            return multi_lending_check(
                party, requester=0, mode=mode, customer_id="alice", limit=limit
            )
        return multi_lending_check(party, requester=0, mode=mode, book=books[party.index - 1])

    seen = Mesh(3).watch(work)
    assert_last_burst(seen)
    assert (seen.result.total if mode == "total" else seen.result.exceeds) in (35, True)


# --- federated learning ------------------------------------------------------------------------


def _rows(count: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, width))
    y = (x[:, 0] + 0.3 * rng.normal(size=count) > 0).astype(float)
    y[:2] = [0.0, 1.0]  # both classes
    return x, y


def test_horizontal_fl_records_the_delivery_before_a_sum_gives_the_aggregator_its_output() -> None:
    """The unmask shares of each secure sum give the aggregator the pooled statistics, then
    each round's model, and the clients still receive (the next round, then ``done``)."""
    config = federation.FederationConfig(rounds=2, local_epochs=1)
    links, clients = {}, []
    for client in (1, 2, 3):
        server_end, client_end = channel_pair()
        links[client] = server_end
        data = ClientData(*_rows(12, 3, client))

        def work(
            views: dict[int, Channel], client: int = client, data: ClientData = data
        ) -> object:
            return federation.run_client(
                views[0], client, data, config, index=client - 1, clients=3, timeout=TIMEOUT
            )

        clients.append(({0: client_end}, work))
    seen = watch(
        lambda: federation.run_aggregator(links, config, features=3, timeout=TIMEOUT), clients
    )
    assert_bound(seen)
    assert seen.recorded == [False] * 3  # each client, at its first sum
    assert seen.result.rounds == 2


def _vertical_parts(parties: int) -> tuple[list[np.ndarray], np.ndarray]:
    x, y = _rows(24, 2 * parties, 7)
    return np.array_split(x, parties, axis=1), y


@pytest.mark.parametrize(("parties", "requester"), [(2, 0), (2, 1), (3, 0)])
def test_vertical_lr_with_weights_out_records_the_delivery_before_the_requesters_weights(
    parties: int, requester: int
) -> None:
    columns, labels = _vertical_parts(parties)
    config = vertical.VerticalConfig(epochs=2)

    def work(party: Party) -> object:
        mine = labels if party.index == requester else None
        return vertical.train_vertical_ss(
            party, columns[party.index], mine, label_holder=requester, config=config
        )

    seen = Mesh(parties).watch(work, requester)
    assert_bound(seen)
    # opened last to the requester (the higher index), its weights are the last burst
    assert seen.recorded == ([] if requester == 1 else [False] * (parties - 1))
    assert isinstance(seen.result, vertical.PartyModel)


def _shared_models(parties: int, requester: int) -> tuple[list[vertical.SharedModel], Any]:
    columns, labels = _vertical_parts(parties)
    config = vertical.VerticalConfig(epochs=2)
    mesh = Mesh(parties)
    models: list[Any] = [None] * parties
    with ThreadPoolExecutor(parties) as pool:
        runs = {
            i: pool.submit(
                vertical.train_vertical_ss_shared,
                Mesh.party(i, mesh.channels[i]),
                columns[i],
                labels if i == requester else None,
                label_holder=requester,
                config=config,
            )
            for i in range(parties)
        }
        for i, run in runs.items():
            models[i] = run.result(timeout=TIMEOUT)
    for channels in mesh.channels:
        for channel in channels.values():
            channel.close()
    return models, columns


@pytest.mark.parametrize("requester", [0, 1])
def test_vertical_lr_prediction_and_commitments_reach_the_requester_bound(
    requester: int,
) -> None:
    """What follows a shared training at the node: the validation scores, opened to the
    requester, then the exchange of commitments that completes every party's model part."""
    models, columns = _shared_models(2, requester)

    def work(party: Party) -> object:
        model = models[party.index]
        scores = vertical.predict_vertical_shared(
            party, columns[party.index], model, requester=requester, label_holder=requester
        )
        return scores, vertical.commit_parts(party, model)

    seen = Mesh(2).watch(work, requester)
    assert_bound(seen)
    assert seen.recorded == [False]  # the scores (requester 0) or the commitment (1) left
    assert seen.result[0].shape == (24,)


@pytest.mark.parametrize("output", ["scores", "ids"])
def test_joint_prediction_releases_in_the_model_parties_last_bursts(output: Any) -> None:
    """Model parties 0 and 1 (the label holder 0), the requester 2 outside the model."""
    models, columns = _shared_models(2, 0)
    ids = [b"row-%d" % i for i in range(24)]

    def work(party: Party) -> object:
        if party.index == 2:
            return joint.receive_joint(
                party,
                (0, 1),
                rows=24,
                output=output,
                requester_holds_ids=output == "scores",
                frac_bits=models[0].frac_bits,
                probability=lambda s: 1.0 / (1.0 + np.exp(-s)),
            )
        scorer = vertical.SharedLrScorer(models[party.index], label_holder=0)
        return joint.predict_joint(
            party,
            scorer,
            columns[party.index],
            rows=24,
            requester=2,
            output=output,
            threshold=0.5 if output == "ids" else None,
            requester_holds_ids=output == "scores",
            id_holder=None if output == "scores" else 1,
            ids=ids if output == "ids" and party.index == 1 else None,
        )

    seen = Mesh(3).watch(work, requester=2)
    assert_last_burst(seen)


@pytest.mark.parametrize("owners", [1, 2])
def test_vertical_gbdt_records_the_delivery_before_the_owners_build_the_label_holders_trees(
    owners: int,
) -> None:
    """The feature owners' histograms and partitions build the label holder's trees while the
    owners still receive (the next level, tree, ``finish``)."""
    x, y = _rows(60, 2 * (owners + 1), 11)
    parts = np.array_split(x, owners + 1, axis=1)
    config = gbdt.GbdtConfig(trees=2, max_depth=2, min_child_samples=5, key_bits=1024, seed=3)
    pairs = [channel_pair() for _ in range(owners)]

    def owner(k: int) -> Callable[[dict[int, Channel]], object]:
        return lambda views: gbdt.train_feature_owner(views[0], parts[k + 1], config=config)

    seen = watch(
        lambda: gbdt.train_label_holder([a for a, _ in pairs], parts[0], y, config=config),
        [({0: b}, owner(k)) for k, (_, b) in enumerate(pairs)],
    )
    assert_bound(seen)
    assert seen.recorded == [False] * owners
    assert isinstance(seen.result, gbdt.LabelHolderModel)
