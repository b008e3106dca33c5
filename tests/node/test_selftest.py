from __future__ import annotations

import numpy as np
import pytest

from privledger.node.selftest import SelfTestError, run_selftest
from privledger.protocols.psi import ot


def test_selftest_passes_on_a_working_stack() -> None:
    assert 0 < run_selftest() < 30


def test_selftest_refuses_a_broken_aes(monkeypatch: pytest.MonkeyPatch) -> None:
    """An AES that returns zeros makes every tag equal: the self-test must notice."""

    def broken(key: bytes, blocks: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        result = np.zeros(blocks.shape, dtype=np.uint8) if out is None else out
        result[...] = 0
        return result

    monkeypatch.setattr(ot, "aes_ecb", broken)
    with pytest.raises(SelfTestError, match="kkrt-psi gave a wrong intersection"):
        run_selftest()
