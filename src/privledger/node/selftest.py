"""The protocol self-test a node runs before it takes tasks.

A small KKRT-PSI, RR22-PSI and ECDH-PSI run between two threads of this process over an in-memory
channel, and their intersections are checked against Python's set intersection. A node whose
native crypto stack is broken (OpenSSL behind ``cryptography``, libsecp256k1, libsodium) then
refuses to start instead of failing its first task on chain. The run also loads the code paths a
first task needs (AES contexts, pyarrow's conversions, numpy's kernels), so the first task after
a start is not slower than the next ones.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from privledger.node.context import NodeSetupError
from privledger.protocols.channel import channel_pair
from privledger.protocols.psi import ecdh, kkrt, rr22

logger = logging.getLogger(__name__)

KKRT_ITEMS = 4096
RR22_ITEMS = 4096  # ~50 ms here, as KKRT
ECDH_ITEMS = 32
# RR22's kernels are compiled on a machine's first run (~5 s of CPU here, and the nodes of a
# consortium started at once on two cores share the cores): the wait for the other thread allows it
TIMEOUT_S = 180.0
KEYED = {"kkrt": kkrt, "rr22": rr22}


class SelfTestError(NodeSetupError):
    """A protocol gave a wrong result on this machine."""


def run_selftest() -> float:
    """Run the self-test; its duration in seconds, or :class:`SelfTestError`."""
    started = time.perf_counter()
    for name, size in (("kkrt", KKRT_ITEMS), ("rr22", RR22_ITEMS), ("ecdh", ECDH_ITEMS)):
        shared = [secrets.token_bytes(12) for _ in range(size // 2)]
        mine = shared + [secrets.token_bytes(12) for _ in range(size - len(shared))]
        theirs = [secrets.token_bytes(12) for _ in range(size - len(shared))] + shared
        if sorted(_intersection(name, mine, theirs)) != sorted(set(mine) & set(theirs)):
            raise SelfTestError(f"{name}-psi gave a wrong intersection on this machine")
    seconds = time.perf_counter() - started
    logger.info("protocol self-test passed in %.3f s", seconds)
    return seconds


def _intersection(protocol: str, mine: list[bytes], theirs: list[bytes]) -> list[bytes]:
    """The requester's output of one run between two threads, the way a node runs it: KKRT and
    RR22 on Arrow columns (``run_psi_column``), ECDH on lists."""
    a, b = channel_pair()
    with a, b, ThreadPoolExecutor(1) as pool:
        if protocol in KEYED:
            run_psi_column = KEYED[protocol].run_psi_column
            column = functools.partial(pa.array, type=pa.large_binary())
            provider = pool.submit(
                run_psi_column, b, column(theirs), role="provider", timeout=TIMEOUT_S
            )
            result = run_psi_column(a, column(mine), role="requester", timeout=TIMEOUT_S)
            provider.result()
            items: list[bytes] = result.intersection.to_pylist()
            return items
        other = pool.submit(ecdh.run_psi, b, theirs, role="provider", timeout=TIMEOUT_S)
        found = ecdh.run_psi(a, mine, role="requester", timeout=TIMEOUT_S)
        other.result()
        return found.intersection


if __name__ == "__main__":  # `make test` and `make demo` run it once, quietly, before any node
    run_selftest()
