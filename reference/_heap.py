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
from collections.abc import Callable

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


#: (pid, descriptor) of /proc/self/statm, kept open: it is read after every batched call, and opening it costs
#: several times the read. A forked child has its own /proc/self and opens it afresh.
_STATM: list[tuple[int, int]] = []


def resident_bytes() -> int | None:
    """The process's resident memory (Linux), else None."""
    try:
        pid = os.getpid()
        if not _STATM or _STATM[0][0] != pid:
            _STATM[:] = [(pid, os.open("/proc/self/statm", os.O_RDONLY))]
        return int(os.pread(_STATM[0][1], 256, 0).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError, AttributeError):  # no /proc, or no os.pread (Windows)
        return None


class Heap:
    """Call ``settle()`` after each batched call: gives freed memory back once more than ``slack``
    bytes have piled up since the last time. ``trim`` and ``resident`` stand in for malloc_trim and
    ``resident_bytes`` (to test the policy without the C library)."""

    def __init__(self, slack: int, *, trim: Callable[[int], object] | None = None, resident: Callable[[], int | None] | None = None) -> None:
        self.slack = slack
        self._trim = trim or _TRIM
        self._resident = resident or resident_bytes
        self.base = self._resident()

    def settle(self) -> None:
        if self._trim is None or self.base is None:
            return
        now = self._resident()
        if now is not None and now - self.base > self.slack:
            self._trim(0)
            self.base = self._resident() or now
