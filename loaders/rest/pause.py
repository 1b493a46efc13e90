"""Pause a REST run cleanly on Ctrl-C or SIGTERM (a cancelled scheduled job sends SIGTERM).

The first signal asks workers to stop after the page they are on; the round in progress is
merged and checkpointed without its unfinished windows, and the command exits with code 4.
Running the same command again resumes. A second Ctrl-C stops at once (still safe: landed
pages are immutable, and an unfinished round is pulled again on resume).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

logger = logging.getLogger(__name__)


@contextmanager
def pause_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set ``stop`` on the first SIGINT/SIGTERM while inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        logger.warning(
            "%s received: finishing the pages in flight, then checkpointing; run the same "
            "command again to resume (Ctrl-C again to stop at once)",
            signal.Signals(signum).name,
        )

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
