"""Login challenges are held per client address: one address asking for challenges in a loop
drops only its own, never another address's before it is signed (``explorer.auth``)."""

from __future__ import annotations

import pytest

import privledger.explorer.auth as auth_module
from privledger.explorer.auth import MAX_CHALLENGES_PER_CLIENT, ExplorerAuth

pytestmark = pytest.mark.security


def _challenge(auth: ExplorerAuth, client: str) -> str:
    return auth.new_challenge("telecom", 3, 31337, client)[0]


def test_an_address_flooding_challenges_drops_only_its_own() -> None:
    auth = ExplorerAuth()
    auditors = _challenge(auth, "10.0.0.1")
    flood = [_challenge(auth, "10.0.0.66") for _ in range(10 * MAX_CHALLENGES_PER_CLIENT)]
    assert len(auth.challenges) == 1 + MAX_CHALLENGES_PER_CLIENT
    auth.take_challenge(auditors)  # still there: no AuthFailure
    auth.take_challenge(flood[-1])  # the flood's newest are kept, its oldest dropped
    with pytest.raises(auth_module.AuthFailure, match="unknown or already used"):
        auth.take_challenge(flood[0])
    assert set(auth.by_client) == {"10.0.0.66"}  # an address with none left is forgotten


def test_when_full_the_address_holding_most_loses_its_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth_module, "MAX_CHALLENGES", 4)
    auth = ExplorerAuth()
    auditors = _challenge(auth, "10.0.0.1")
    flood = [_challenge(auth, f"10.0.0.{66 + i % 2}") for i in range(10)]  # two addresses
    assert len(auth.challenges) == 4
    auth.take_challenge(auditors)
    auth.take_challenge(flood[-1])
