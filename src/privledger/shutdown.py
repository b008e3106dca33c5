"""Long-running commands stop the same way whichever signal asks them to.

Python turns only SIGINT into ``KeyboardInterrupt``; SIGTERM (``kill``, systemd, a supervisor)
and SIGHUP end the process at once, so ``finally`` blocks never run and the child processes a
command started (anvil, node processes) are left behind. A command started in the background of
a shell script also inherits SIGINT as *ignored*, so Ctrl-C's signal does nothing. Inside
:func:`stop_on_signals` each of the three raises ``KeyboardInterrupt``, the cleanup that already
handles Ctrl-C runs, and further signals are ignored until it is done.

A server (:func:`stops_on_signals`) does the same. uvicorn shuts down gracefully on SIGINT and
SIGTERM and then raises the signal again with the handler it found: without ours that is the
default action for SIGTERM, and the node died before its ``finally`` stopped its worker and the
API processes beside it, which kept answering on its port for a while.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import ParamSpec

P = ParamSpec("P")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop(signum: int, _frame: FrameType | None) -> None:
    for number in SIGNALS:  # let the cleanup finish: it stops children with its own timeouts
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` in the main thread while inside."""
    previous = {number: signal.signal(number, _stop) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stops_on_signals(function: Callable[P, None]) -> Callable[P, None]:
    """``function`` run inside :func:`stop_on_signals`: a stop signal ends it normally, once its
    own ``finally`` blocks have run (a server's cleanup)."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        with stop_on_signals(), suppress(KeyboardInterrupt):
            function(*args, **kwargs)

    return run
