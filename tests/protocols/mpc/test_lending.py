from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from privledger.protocols.channel import Channel, ChannelClosed, channel_pair
from privledger.protocols.mpc.dealer import Dealer, local_mesh
from privledger.protocols.mpc.lending import (
    MAX_AMOUNT,
    LendingResult,
    LoanBook,
    Mode,
    customer_key,
    multi_lending_check,
)
from privledger.protocols.mpc.sharing import Party, PartyDropout

BOOKS = [
    LoanBook.from_records([("alice", 100), ("bob", 5), ("alice", 20)]),  # alice: 120
    LoanBook.from_records({"carol": 7}),  # no alice
    LoanBook.from_records({"alice": 30, "dave": 1}),
    LoanBook.from_records({}),
]


def _check(
    books: Sequence[LoanBook], customer: str, mode: Mode, limit: int | None = None
) -> LendingResult:
    def work(party: Party) -> LendingResult | None:
        if party.index == 0:
            return multi_lending_check(
                party, requester=0, mode=mode, customer_id=customer, limit=limit
            )
        return multi_lending_check(party, requester=0, mode=mode, book=books[party.index - 1])

    with local_mesh(len(books) + 1, timeout=20) as mesh:
        results = mesh.run(work)
    assert all(r is None for r in results[1:])
    assert results[0] is not None
    return results[0]


def test_total_across_banks() -> None:
    assert _check(BOOKS, "alice", "total") == LendingResult("total", 4, total=150)
    assert _check(BOOKS, "carol", "total").total == 7
    assert _check(BOOKS, "nobody", "total").total == 0


@pytest.mark.parametrize(
    ("customer", "limit", "expected"),
    [
        ("alice", 149, True),
        ("alice", 150, False),  # equal to the limit is not exceeding it
        ("alice", 151, False),
        ("alice", 0, True),
        ("nobody", 0, False),  # total zero, limit zero
        ("alice", 2**62, False),
    ],
)
def test_exceeds_bit_at_the_boundary(customer: str, limit: int, expected: bool) -> None:
    result = _check(BOOKS, customer, "exceeds", limit)
    assert result == LendingResult("exceeds", 4, exceeds=expected)


def test_many_customers_per_bank() -> None:
    rng = np.random.default_rng(8)
    books = []
    truth = 0
    for bank in range(3):
        keys = np.array([customer_key(f"b{bank}-{i}") for i in range(3000)], dtype=np.uint64)
        amounts = rng.integers(0, 10**9, 3000)
        if bank != 1:
            keys[1234] = customer_key("target")
            truth += int(amounts[1234])
        books.append(LoanBook.from_arrays(keys, amounts))
    assert _check(books, "target", "total").total == truth
    assert _check(books, "target", "exceeds", truth).exceeds is False
    assert _check(books, "target", "exceeds", truth - 1).exceeds is True


@pytest.mark.parametrize("amount", [-1, 1.5, 2.0, True, "10", MAX_AMOUNT + 1])
def test_bad_amounts_are_rejected(amount: object) -> None:
    with pytest.raises(ValueError):
        LoanBook.from_records({"alice": amount})  # type: ignore[dict-item]


def test_bad_arrays_and_totals_are_rejected() -> None:
    keys = np.array([1, 2], dtype=np.uint64)
    with pytest.raises(ValueError):
        LoanBook.from_arrays(keys, np.array([1, -1]))
    with pytest.raises(ValueError):
        LoanBook.from_arrays(keys, np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        LoanBook.from_records([("alice", MAX_AMOUNT), ("alice", 1)])
    with pytest.raises(ValueError):
        customer_key("")


@pytest.mark.parametrize("limit", [-1, 1.5, None, 2**62 + 1])
def test_bad_limit_is_rejected(limit: object) -> None:
    with local_mesh(2, timeout=1) as mesh, pytest.raises(ValueError):
        multi_lending_check(
            mesh.parties[0],
            requester=0,
            mode="exceeds",
            customer_id="a",
            limit=limit,  # type: ignore[arg-type]
        )


def test_roles_are_checked() -> None:
    with local_mesh(2, timeout=1) as mesh:
        with pytest.raises(ValueError):
            multi_lending_check(mesh.parties[1], requester=0, mode="total", customer_id="a")
        with pytest.raises(ValueError):
            multi_lending_check(mesh.parties[0], requester=0, mode="total", book=BOOKS[0])
        with pytest.raises(ValueError):
            multi_lending_check(
                mesh.parties[0], requester=0, mode="total", customer_id="a", limit=1
            )


class _Crashing(Channel):
    """Forwards to ``inner`` until ``budget`` messages were sent, then the party 'crashes'."""

    def __init__(self, inner: Channel, budget: int) -> None:
        super().__init__(inner.side)
        self._inner = inner
        self._budget = budget

    def close(self) -> None:
        self._inner.close()

    def _send_raw(self, payload: bytes) -> None:
        if self._budget <= 0:
            self._inner.close()
            raise ChannelClosed("simulated crash")
        self._budget -= 1
        self._inner.send(payload)

    def _recv_raw(self, timeout: float | None) -> bytes:
        return self._inner.recv(timeout)


@pytest.mark.parametrize("budget", [0, 3, 8])
def test_bank_dropping_out_mid_protocol_fails_the_task(budget: int) -> None:
    size = 4
    peers: list[dict[int, Channel]] = [{} for _ in range(size)]
    for i in range(size):
        for j in range(i + 1, size):
            peers[i][j], peers[j][i] = channel_pair()
    peers[2] = {j: _Crashing(ch, budget) for j, ch in peers[2].items()}
    dealer_ends = [channel_pair() for _ in range(size)]
    dealer = Dealer({i: end for i, (_, end) in enumerate(dealer_ends)})
    dealer.serve()
    parties = [Party(i, peers[i], dealer=dealer_ends[i][0], timeout=2) for i in range(size)]
    outcomes: dict[int, object] = {}

    def run(party: Party) -> None:
        try:
            if party.index == 0:
                outcomes[0] = multi_lending_check(
                    party, requester=0, mode="exceeds", customer_id="alice", limit=10
                )
            else:
                book = BOOKS[party.index - 1]
                outcomes[party.index] = multi_lending_check(
                    party, requester=0, mode="exceeds", book=book
                )
        except Exception as exc:
            outcomes[party.index] = exc

    threads = [threading.Thread(target=run, args=(p,)) for p in parties]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    for end, _ in dealer_ends:
        end.close()
    with pytest.raises(PartyDropout):  # the dealer reports the aborted session, not success
        dealer.join(5)
    assert isinstance(outcomes[0], PartyDropout)  # the requester learns nothing
    assert all(isinstance(outcomes[i], Exception) for i in range(size))
