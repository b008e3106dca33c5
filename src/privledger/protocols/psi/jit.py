"""Compiled kernels for the PSI protocols: numba, imported and compiled on a kernel's first call.

The gather-and-XOR loops of RR22 (the expand-accumulate code, OKVS peeling and decoding, tables
of GF(2^128) products, tag lookups) are random memory accesses one element at a time, which
numpy can only do through index arrays and temporaries (~20 ns per 16-byte gather here, against
~12 ns in a compiled loop, and no fresh pages). Only those non-cryptographic loops are compiled:
AES stays in ``cryptography``.

Every kernel is ``numba.njit(cache=True, nogil=True)``: the machine code is cached on disk
(``__pycache__`` beside this package, or numba's user cache when that is read-only), and a call
releases the GIL, so that the protocols' second threads run kernels in parallel. numba (~0.7 s)
is imported when the first kernel is called, not when the protocols are imported: a node that
never runs RR22 does not pay for it. Kernels must not call each other (a kernel's name is bound
to its lazy wrapper, which compiled code cannot call).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

Kernel = TypeVar("Kernel", bound=Callable[..., Any])

_COMPILE_LOCK = threading.Lock()


def loaded() -> bool:
    """Whether numba is imported already (a kernel has been called in this process): code shared
    with protocols that need no kernels can use compiled ones then without making those
    protocols pay numba's import."""
    return "numba" in sys.modules


def kernel(function: Kernel) -> Kernel:
    """``function`` compiled by numba on its first call (see the module docstring)."""
    compiled: list[Callable[..., Any]] = []

    @functools.wraps(function)
    def call(*args: Any) -> Any:
        if not compiled:
            with _COMPILE_LOCK:
                if not compiled:
                    import numba

                    compiled.append(numba.njit(cache=True, nogil=True)(function))
        return compiled[0](*args)

    return cast(Kernel, call)
