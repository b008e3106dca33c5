"""The protocol self-test a node runs before it takes tasks.

A small KKRT-PSI and a small ECDH-PSI run between two threads of this process over an in-memory
channel, and their intersections are checked against Python's set intersection. A node whose
native crypto stack is broken (OpenSSL behind ``cryptography``, libsecp256k1, libsodium) then
refuses to start instead of failing its first task on chain. The run also loads the code paths a
first task needs (AES contexts, pyarrow's conversions, numpy's kernels), so the first task after
a start is not slower than the next ones.
"""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from privledger.node.context import NodeSetupError
from privledger.protocols.channel import channel_pair
from privledger.protocols.psi import ecdh, kkrt

logger = logging.getLogger(__name__)

KKRT_ITEMS = 4096
ECDH_ITEMS = 32
TIMEOUT_S = 30.0


class SelfTestError(NodeSetupError):
    """A protocol gave a wrong result on this machine."""


def run_selftest() -> float:
    """Run the self-test; its duration in seconds, or :class:`SelfTestError`."""
    started = time.perf_counter()
    for name, run_psi, size in (
        ("kkrt", kkrt.run_psi, KKRT_ITEMS),
        ("ecdh", ecdh.run_psi, ECDH_ITEMS),
    ):
        shared = [secrets.token_bytes(12) for _ in range(size // 2)]
        mine = shared + [secrets.token_bytes(12) for _ in range(size - len(shared))]
        theirs = [secrets.token_bytes(12) for _ in range(size - len(shared))] + shared
        a, b = channel_pair()
        with a, b, ThreadPoolExecutor(1) as pool:
            provider = pool.submit(run_psi, b, theirs, role="provider", timeout=TIMEOUT_S)
            result = run_psi(a, mine, role="requester", timeout=TIMEOUT_S)
            provider.result()
        if sorted(result.intersection) != sorted(set(mine) & set(theirs)):
            raise SelfTestError(f"{name}-psi gave a wrong intersection on this machine")
    seconds = time.perf_counter() - started
    logger.info("protocol self-test passed in %.3f s", seconds)
    return seconds
