"""SIGTERM handled like Ctrl-C.

``kill``, systemd, a supervisor or the engine's scheduler stop a process with SIGTERM, whose
default action ends it on the spot: no ``finally`` runs, so a pool's workers, its temporary
files and a half-written run record would be left to the watchdogs. Raising KeyboardInterrupt
instead sends SIGTERM down the same, tested path as Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    # Once is enough: a second SIGTERM during the clean-up must not interrupt the clean-up.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"terminated by signal {signum}")


def sigterm_as_interrupt() -> bool:
    """Install the handler (main thread only; elsewhere Python forbids it). True if installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return False  # someone (an event loop, a test harness) handles it already
    signal.signal(signal.SIGTERM, _raise_terminated)
    return True
