"""A provider's channels hold back its last messages until the worker releases them (after the
anchor), while everything a peer needs to answer still flows at once."""

from __future__ import annotations

import threading
import time

import pytest

from privledger.node.release import LastMessages
from privledger.protocols.channel import ChannelTimeout, channel_pair


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
