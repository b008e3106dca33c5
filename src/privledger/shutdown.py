"""Long-running commands stop the same way whichever signal asks them to.

Python turns only SIGINT into ``KeyboardInterrupt``; SIGTERM (``kill``, systemd, a supervisor)
and SIGHUP end the process at once, so ``finally`` blocks never run and the child processes a
command started (anvil, node processes) are left behind. A command started in the background of
a shell script also inherits SIGINT as *ignored*, so Ctrl-C's signal does nothing. Inside
:func:`stop_on_signals` each of the three raises ``KeyboardInterrupt``, the cleanup that already
handles Ctrl-C runs, and further signals are ignored until it is done.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

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
