"""SIGTERM handled like Ctrl-C, so `finally` blocks clean up the same way for both."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (as Ctrl-C does)."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
