"""Items 5, 6 and 7 of issue 15: what the provider of a revealed KKRT-PSI, the receiver of a
three-party union, and anyone who sees a cuckoo abort learn beyond the output."""

from __future__ import annotations

import math
import secrets
import threading

import pytest

from privledger.protocols.channel import InMemoryChannel, channel_pair
from privledger.protocols.psi import cuckoo, kkrt
from privledger.protocols.psi.multiparty import local_channels, run_union
from tests.privacy.test_prime_order_group import Recording

pytestmark = pytest.mark.privacy

TIMEOUT = 60.0


def _records(message: bytes, width: int) -> list[int]:
    body = message[12:]  # records header: count (8 bytes), width (4 bytes)
    return [int.from_bytes(body[i : i + width], "big") for i in range(0, len(body), width)]


def test_kkrt_reveal_does_not_tell_the_provider_which_hash_function_placed_a_match() -> None:
    """The hash function that placed an item depends on the requester's *other* items (cuckoo
    evictions). Version 3 sent ``i * n_P + position`` per match: the provider read ``i``."""
    shared = [secrets.token_bytes(10) for _ in range(400)]
    requester_items = shared + [secrets.token_bytes(10) for _ in range(600)]
    provider_items = shared + [secrets.token_bytes(10) for _ in range(600)]
    end_a, end_b = channel_pair()
    assert isinstance(end_b, InMemoryChannel)
    provider_end = Recording(end_b)
    outcome: dict[str, object] = {}

    def requester() -> None:
        outcome["r"] = kkrt.run_psi(
            end_a, requester_items, role="requester", reveal_to_provider=True, timeout=TIMEOUT
        )

    thread = threading.Thread(target=requester, daemon=True)
    thread.start()
    result = kkrt.run_psi(
        provider_end, provider_items, role="provider", reveal_to_provider=True, timeout=TIMEOUT
    )
    thread.join(TIMEOUT)
    assert sorted(result.intersection) == sorted(shared)
    revealed = _records(provider_end.received[-1], 8)
    n_p = len(provider_items)
    hash_index = [value // n_p for value in revealed]
    # the old message: about a third of the matches each under functions 0, 1 and 2
    assert set(hash_index) == {0}, f"hash functions revealed: {sorted(set(hash_index))}"
    assert revealed == sorted(set(revealed)) and len(revealed) == len(shared)


def _union_view(member_items: list[bytes]) -> list[int]:
    """Sizes of the messages the union's receiver (party 0) gets from member 1."""
    mesh = local_channels(range(3))
    inner = mesh[0][1]
    assert isinstance(inner, InMemoryChannel)
    recording = Recording(inner)
    mesh[0][1] = recording
    sets = [
        [secrets.token_bytes(12) for _ in range(30)],
        member_items,
        [secrets.token_bytes(12) for _ in range(30)],
    ]
    results: dict[int, object] = {}

    def party(index: int) -> None:
        results[index] = run_union(index, mesh[index], sets[index], receiver=0, timeout=TIMEOUT)

    threads = [threading.Thread(target=party, args=(k,), daemon=True) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    union = results[0].items  # type: ignore[attr-defined]
    assert sorted(union) == sorted(set(sets[0]) | set(sets[1]) | set(sets[2]))
    return sorted(len(message) for message in recording.received)


def test_union_receiver_does_not_learn_the_member_item_lengths() -> None:
    """Two member sets of 50 items whose longest item has 32 bytes: one with lengths 1..32, one
    with every item 32 bytes long. The receiver's view must have the same shape for both."""
    varied = [secrets.token_bytes(1 + k % 32) for k in range(49)] + [secrets.token_bytes(32)]
    uniform = [secrets.token_bytes(32) for _ in range(50)]
    assert _union_view(varied) == _union_view(uniform)


def _fit_bits(n: int, bins: int) -> float:
    """The published empirical fit of cryptoTools' CuckooIndex::selectParams (stash-less,
    3 hash functions): statistical security ``a(n) e + b(n)`` of ``e = bins / n``."""
    nn = math.log2(n)
    a = 123.5 / 2 * (1 + math.erf((nn - 6.3) / (2.3 * math.sqrt(2))))
    b = -130 / 2 * (1 + math.erf((nn - 6.45) / (2.18 * math.sqrt(2)))) - nn
    return a * bins / n + b


@pytest.mark.parametrize("log_n", [10, 16, 20, 24])
def test_cuckoo_tables_abort_with_probability_at_most_2_to_the_minus_40(log_n: int) -> None:
    """A failed cuckoo table aborts the run where the peer sees it, with a probability that
    depends on the receiver's set; 1.27 n bins gave 2^-7 at 2^20 by this fit."""
    n = 1 << log_n
    assert _fit_bits(n, cuckoo.table_size(n)) >= 40.0
