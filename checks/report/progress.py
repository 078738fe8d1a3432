"""Progress on stderr for runs that take more than a moment.

Nothing is shown during the first ``DELAY`` seconds, so quick runs stay quiet. After that, on a
terminal, one line is redrawn in place (derivation and examples done/total) and cleared at the end;
when stderr is not a terminal (a CI log), one line is written per derivation. Progress never writes
to stdout, and is off under pytest (``PYTEST_CURRENT_TEST``) or with ``VERIGRAD_PROGRESS=0``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import TextIO

from verigrad.checks.report.words import visible

#: Seconds a run must have taken before any progress is shown.
DELAY = 2.0
#: Seconds between redraws of the terminal line (redrawing every example would flicker).
REFRESH = 0.1


def _enabled_by_environment() -> bool:
    return not os.environ.get("PYTEST_CURRENT_TEST") and os.environ.get("VERIGRAD_PROGRESS", "1") != "0"


class Progress:
    def __init__(
        self,
        stream: TextIO | None,
        *,
        delay: float = DELAY,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.delay = delay
        self.clock = clock
        self.started = clock()
        self.enabled = stream is not None and (_enabled_by_environment() if enabled is None else enabled)
        try:
            self.tty = bool(stream is not None and stream.isatty())
        except (AttributeError, OSError, ValueError):
            self.tty = False
        self._drawn = False
        self._last = float("-inf")
        self._announced: set[str] = set()

    def update(self, name: str, done: int, total: int, unit: str = "examples") -> None:
        if not self.enabled:
            return
        now = self.clock()
        if now - self.started < self.delay:
            return
        try:
            if self.tty:
                if now - self._last < REFRESH and done < total:
                    return
                self._last = now
                width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
                text = visible(f"verigrad: {name}  {min(done, total)}/{total} {unit}  {now - self.started:.0f} s", newline=False)
                if len(text) > width:
                    text = text[: width - 1] + "…"
                self.stream.write("\r" + text + "\033[K")
                self.stream.flush()
                self._drawn = True
            elif name not in self._announced:
                self._announced.add(name)
                line = f"verigrad: checking {name} ({min(done, total)}/{total} {unit}, {now - self.started:.0f} s into the run)"
                self.stream.write(visible(line, newline=False) + "\n")
                self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: carry on without progress
            self.enabled = False

    def close(self) -> None:
        """Clear the terminal line, so that the report printed next starts on a clean line."""
        if self._drawn and self.enabled:
            try:
                self.stream.write("\r\033[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self._drawn = False
