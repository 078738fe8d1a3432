"""Small batched calls on one intra-op thread.

A stack of small points is a batched call of thousands of tiny operations (a few hundred rows of 8×8
matrices): each is split over torch's intra-op threads only to wait for them, and when another process
holds a core the wait is a time slice. Measured on 2 shared cores, a vmapped forward over 300 rows of a
two-layer net took 37 ms on 2 threads and 1.7 ms on one. Calls of at most SERIAL_ELEMENTS values run on
one thread, whatever the caller set; larger ones (the seed's sizes) keep the caller's threads. The thread
count is restored on the way out, exception or not; the numbers are those of any other summation order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._torch import Deferred

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)


#: A stacked call over at most this many float64 values (rows × entries per row) runs on one intra-op
#: thread: its operations are too small to gain from splitting, and lose a time slice per operation when
#: another process holds a core. 2²² values (32 MiB) covers a search's stack of 16 small points (every
#: dim ≤ 8: under 10⁴ rows of under 300 entries); the seed's sizes keep the caller's threads.
SERIAL_ELEMENTS = 2**22


@contextmanager
def serial_if_small(elements: int) -> Iterator[None]:
    """One intra-op thread inside the block when it handles at most SERIAL_ELEMENTS float64 values."""
    threads = torch.get_num_threads()
    if threads == 1 or elements > SERIAL_ELEMENTS:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
