"""A progress bar for long REST runs: windows done of planned, pages, resources, ETA."""

from __future__ import annotations

import sys
import threading
from types import TracebackType

from tqdm import tqdm


class Progress:
    """Counts tasks (windows) against the plan; shows pages and resources as a postfix.

    Writes to stderr, only when asked or when stderr is a terminal (never into CI logs
    by surprise). Thread-safe: workers and the merging thread both report.
    """

    def __init__(self, enabled: bool | None = None, description: str = "windows") -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._lock = threading.Lock()
        self._bar: tqdm | None = None
        self._description = description
        self.pages = 0
        self.resources = 0

    def __enter__(self) -> Progress:
        if self.enabled:
            self._bar = tqdm(total=0, unit="window", desc=self._description, file=sys.stderr)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()

    def plan(self, windows: int) -> None:
        """Set the number of windows planned."""
        if self._bar is not None:
            with self._lock:
                self._bar.total = windows
                self._bar.refresh()

    def __call__(self, kind: str, amount: int) -> None:
        """Report a finished ``task`` or a landed ``page`` of ``amount`` resources."""
        with self._lock:
            if kind == "page":
                self.pages += 1
                self.resources += amount
            if self._bar is None:
                return
            if kind == "task":
                self._bar.update(amount)
            self._bar.set_postfix(pages=self.pages, resources=self.resources, refresh=False)
