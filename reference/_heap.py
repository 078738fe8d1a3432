"""Keep the memory bound of batched evaluation a bound of the process, not only of each call.

Each batched call stays within its memory budget, and frees what it allocated. But glibc's malloc
keeps freed blocks in its per-thread arenas (torch's intra-op threads allocate in several), and under
some interleavings of those threads the process's resident memory grows call after call: measured
at the seed's sizes, 0.3 GB after one exhaustive run in some runs and 6 GB in others, for the same
arrays. ``malloc_trim(0)`` returns the free blocks of every arena to the system. It costs a walk of
the heap, so it runs only when resident memory has grown by more than a slack since it last ran.
Elsewhere than Linux with glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def resident_bytes() -> int | None:
    """The process's resident memory (Linux), else None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class Heap:
    """Call ``settle()`` after each batched call: gives freed memory back once more than ``slack``
    bytes have piled up since the last time."""

    def __init__(self, slack: int) -> None:
        self.slack = slack
        self.base = resident_bytes()

    def settle(self) -> None:
        if _TRIM is None or self.base is None:
            return
        now = resident_bytes()
        if now is not None and now - self.base > self.slack:
            _TRIM(0)
            self.base = resident_bytes() or now
