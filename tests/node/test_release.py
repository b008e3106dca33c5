"""A provider's channels hold back its last messages until the worker releases them (after the
anchor), while everything a peer needs to answer still flows at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from privledger.node.release import LastMessages
from privledger.protocols.channel import ChannelTimeout, channel_pair
from privledger.protocols.psi import buckets, kkrt, rr22


def test_the_last_burst_waits_for_release_and_is_already_in_the_transcript() -> None:
    inner, peer = channel_pair()
    held = LastMessages({2: inner})
    provider = held.views[2]
    provider.send(b"header")  # held: the peer does not need it yet
    with pytest.raises(ChannelTimeout):
        peer.recv(timeout=0.05)
    answer = threading.Thread(target=lambda: peer.send(peer.recv(timeout=5) + b"-ack"))
    answer.start()
    assert provider.recv(timeout=5) == b"header-ack"  # a receive sends what is held first
    answer.join()

    provider.send(b"last-1")
    provider.send(b"last-2")
    assert held.held == 2
    with pytest.raises(ChannelTimeout):
        peer.recv(timeout=0.05)  # nothing of the last burst before the release
    anchored = provider.transcript_hash  # what the worker anchors, before the burst leaves
    assert anchored != inner.transcript_hash and provider.bytes_sent == len(b"headerlast-1last-2")
    held.release()
    assert [peer.recv(timeout=5), peer.recv(timeout=5)] == [b"last-1", b"last-2"]
    assert peer.transcript_hash == inner.transcript_hash == anchored
    assert held.held == 0


def test_a_receive_on_one_channel_sends_what_another_holds() -> None:
    """Three parties: the provider's message to one peer is what the other peer waits for before
    it answers (were it held, all three would wait for ever)."""
    to_b, b_end = channel_pair()
    to_c, c_end = channel_pair()
    held = LastMessages({2: to_b, 3: to_c})
    held.views[2].send(b"for b")

    def b_relays_to_c() -> None:
        c_end.send(b"b got " + b_end.recv(timeout=5))

    relay = threading.Thread(target=b_relays_to_c)
    relay.start()
    assert held.views[3].recv(timeout=5) == b"b got for b"
    relay.join()
    assert held.views[2].transcript_hash == to_b.transcript_hash == b_end.transcript_hash


def test_a_message_sent_while_a_receive_waits_goes_out_at_once() -> None:
    """One thread waits for the answer to a question another thread asks: were the question
    held, neither would ever come."""
    inner, peer = channel_pair()
    held = LastMessages({2: inner})
    provider = held.views[2]

    def ask() -> None:
        time.sleep(0.2)  # the receive below is waiting by now
        provider.send(b"question")
        peer.send(peer.recv(timeout=5) + b"-answered")

    asker = threading.Thread(target=ask)
    asker.start()
    assert provider.recv(timeout=5) == b"question-answered"
    asker.join()
    assert held.held == 0
    assert provider.transcript_hash == inner.transcript_hash == peer.transcript_hash


class Ledger:
    """What the worker's ``record_delivery`` does, observed: each recording, whether the
    requester had finished by then, and a deadline ``left_s`` ahead."""

    def __init__(self, left_s: float = 60.0, refuse: bool = False) -> None:
        self.left_s, self.refuse = left_s, refuse
        self.recorded: list[bool] = []  # per recording: had the requester finished?
        self.requester: Future[object] | None = None

    def record(self) -> float:
        if self.refuse:
            raise RuntimeError("the task was failed meanwhile")
        time.sleep(0.3)  # long enough for a requester holding its output to finish
        self.recorded.append(self.requester is not None and self.requester.done())
        return time.monotonic() + self.left_s


def test_a_delivery_is_recorded_before_the_messages_that_deliver_leave() -> None:
    inner, peer = channel_pair()
    ledger = Ledger()
    held = LastMessages({2: inner}, record_delivery=ledger.record)
    provider = held.views[2]
    provider.send(b"not yet the output")
    provider.delivering()
    provider.send(b"the output")
    answer = threading.Thread(target=lambda: peer.send(b"%d" % len([peer.recv(5), peer.recv(5)])))
    answer.start()
    assert provider.recv(timeout=5) == b"2"  # both left, after the recording
    answer.join()
    assert len(ledger.recorded) == 1 and held.delivered
    provider.send(b"more output")
    held.release()  # the anchor binds the requester anyway: no second recording
    assert peer.recv(timeout=5) == b"more output" and len(ledger.recorded) == 1


def test_a_delivery_the_ledger_refuses_keeps_the_messages() -> None:
    inner, peer = channel_pair()
    held = LastMessages({2: inner}, record_delivery=Ledger(refuse=True).record)
    provider = held.views[2]
    provider.delivering()
    provider.send(b"the output")
    with pytest.raises(RuntimeError):
        provider.recv(timeout=5)
    with pytest.raises(ChannelTimeout):
        peer.recv(timeout=0.1)  # nothing left
    assert held.held == 1 and not held.delivered


def test_after_a_delivery_receives_end_in_time_to_anchor() -> None:
    """A requester that keeps what the provider waits for cannot hold it past the time it
    needs to anchor before the deadline, whatever the protocol's own timeout."""
    inner, _peer = channel_pair()
    held = LastMessages({2: inner}, record_delivery=Ledger(left_s=0.5).record)
    provider = held.views[2]
    provider.delivering()
    provider.send(b"the output")
    started = time.monotonic()
    with pytest.raises(ChannelTimeout):
        provider.recv(timeout=30)
    assert time.monotonic() - started < 5
    with pytest.raises(ChannelTimeout):
        provider.recv(timeout=30)  # no time left at all


def _sets() -> tuple[list[bytes], list[bytes]]:
    return [b"%d" % i for i in range(300)], [b"%d" % i for i in range(200, 600)]


@pytest.mark.parametrize("protocol", [kkrt, rr22], ids=["kkrt", "rr22"])
@pytest.mark.parametrize("reveal", [False, True])
def test_a_keyed_psi_records_a_delivery_only_when_the_provider_learns_after_the_requester(
    protocol: ModuleType, reveal: bool
) -> None:
    """Output to both: the tags give the requester its output while the provider still waits
    for its matched positions, so the delivery is recorded before they leave. Output to the
    requester: the tags are the provider's last burst, released after its anchor."""
    x, y = _sets()
    a, b = channel_pair()
    ledger = Ledger()
    held = LastMessages({1: b}, record_delivery=ledger.record)
    with ThreadPoolExecutor(2) as pool:
        ledger.requester = pool.submit(
            protocol.run_psi, a, x, role="requester", reveal_to_provider=reveal, timeout=30
        )
        provider = pool.submit(
            protocol.run_psi,
            held.views[1],
            y,
            role="provider",
            reveal_to_provider=reveal,
            timeout=30,
        )
        provided = provider.result(timeout=30)
        assert ledger.recorded == ([False] if reveal else [])
        held.release()
        result = ledger.requester.result(timeout=30)
    assert result.intersection == sorted(set(x) & set(y))
    assert provided.learned_output is reveal


@pytest.mark.parametrize("reveal", [False, True])
def test_a_bucketed_psi_records_a_delivery_before_the_first_buckets_tags(
    tmp_path: Path, reveal: bool
) -> None:
    """The requester learns its output bucket by bucket while the provider still receives the
    next buckets: in either output mode the delivery is recorded before the first tags leave."""
    x, y = _sets()
    files = []
    for name, items in (("requester.csv", x), ("provider.csv", y)):
        path = tmp_path / name
        path.write_text("id\n" + "".join(item.decode() + "\n" for item in items))
        files.append(path)
    a, b = channel_pair()
    ledger = Ledger()
    held = LastMessages({1: b}, record_delivery=ledger.record)
    common = {"buckets": 6, "workers": 0, "reveal_to_provider": reveal, "timeout": 30.0}
    key = bytes(16)
    with ThreadPoolExecutor(2) as pool:
        ledger.requester = pool.submit(
            buckets.run_bucketed_psi,
            a,
            "requester",
            files[0],
            "id",
            tmp_path / "r.jsonl",
            partition_key=key,
            **common,
        )
        provider = pool.submit(
            buckets.run_bucketed_psi,
            held.views[1],
            "provider",
            files[1],
            "id",
            tmp_path / "p.jsonl",
            partition_key=key,
            **common,
        )
        provider.result(timeout=30)
        assert ledger.recorded == [False]
        held.release()
        result = ledger.requester.result(timeout=30)
    assert result.matched == len(set(x) & set(y))


def test_only_a_delivery_to_the_requester_is_recorded() -> None:
    """A provider's output for another provider (rows aligned among the providers alone) binds
    no one: only a delivery on the requester's channel is recorded."""
    to_requester, requester = channel_pair()
    to_other, other = channel_pair()
    ledger = Ledger()
    held = LastMessages({1: to_requester, 3: to_other}, record_delivery=ledger.record, requester=1)
    held.views[3].delivering()
    held.views[3].send(b"the other provider's output")
    threading.Thread(target=lambda: other.send(other.recv(5) + b" seen")).start()
    assert held.views[3].recv(timeout=5) == b"the other provider's output seen"
    assert ledger.recorded == [] and not held.delivered
    held.views[1].delivering()
    held.views[1].send(b"the requester's output")
    threading.Thread(target=lambda: requester.send(requester.recv(5) + b" seen")).start()
    assert held.views[1].recv(timeout=5) == b"the requester's output seen"
    assert ledger.recorded == [False] and held.delivered
