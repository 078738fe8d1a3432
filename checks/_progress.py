"""Progress on stderr for runs that take more than a moment (placeholder: prints nothing yet)."""

from __future__ import annotations

from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def update(self, name: str, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass
