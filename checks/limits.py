"""Limits a derivation must live within: wall time and memory, checked before harm is done."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from collections.abc import Iterator, Mapping

from verigrad.analytic import Derivation
from verigrad.checks import options

#: Default per-derivation time limit of the CLI, in seconds: a seed-sized exhaustive check takes 1–2 min
#: (62–125 s in benchmarks/results.md); the rest is room for a slower machine.
DEFAULT_TIMEOUT = 600.0
#: Bytes one point may need, as a multiple of its float64 parameter bytes: the witnesses' copies,
#: autograd's saved tensors and the forward's intermediates (finite differences are chunked separately).
MEMORY_FACTOR = 16
#: Share of the machine's available memory a point may take.
MEMORY_SHARE = 0.5
#: The environment variable that sets the memory a point may use, in bytes.
MEMORY_VARIABLE = "VERIGRAD_MAX_MEMORY"


class DerivationTimeout(BaseException):
    """Raised inside a derivation's check when its time limit has passed.

    A BaseException, so that neither hypothesis (which would shrink on it) nor the harness's
    handlers of user-code exceptions swallow it.
    """


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the enclosed code with DerivationTimeout after ``seconds`` (main thread, POSIX only).

    A hang in pure Python is interrupted at once; one inside a single long C call when that call returns.
    ``None`` or 0 is no limit; anything else that ``options.seconds`` would refuse (negative, not finite, too
    long for the timer) raises ValueError before the enclosed code runs.
    """
    if seconds is not None and seconds != 0:
        try:
            options.seconds(str(seconds))
        except ValueError as e:
            raise ValueError(f"timeout: {e}") from None
    usable = seconds is not None and seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _expired(signum, frame):
        raise DerivationTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def memory_limit() -> int:
    """Bytes a point may use: VERIGRAD_MAX_MEMORY (bytes) or half of what the machine has available.

    A VERIGRAD_MAX_MEMORY that is not a finite number of bytes >= 1 raises ValueError (one line naming it):
    a limit the user set and mistyped must not silently become another.
    """
    env = os.environ.get(MEMORY_VARIABLE)
    if env is not None and env.strip():
        try:
            return options.byte_count(env)
        except ValueError as e:
            raise ValueError(f"{MEMORY_VARIABLE}: {e}") from None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * MEMORY_SHARE)
    except OSError:
        pass
    return 4 * 2**30


def point_bytes(derivation: Derivation, sizes: Mapping[str, int]) -> float:
    """Estimated bytes to check ``derivation`` at ``sizes`` of its free dims (float, so absurd sizes don't
    overflow). An expression dim counts at its largest over free dims from 1 to ``sizes``, so the estimate
    bounds every point no larger than ``sizes`` too; a layer's output read off the forward is not counted."""
    def entries(shape) -> float:
        return math.prod(derivation.space.upper(d, sizes) for d in shape)

    total = sum(entries(s) for s in derivation.shapes.values())
    if derivation.output is not None:
        total += entries(derivation.output)
    return 8.0 * MEMORY_FACTOR * total


def largest_sizes(derivation: Derivation, max_size: int | None = None) -> dict[str, int]:
    """The largest size the search may draw for each free dim."""
    return {d: (hi if max_size is None else max(lo, min(hi, max_size))) for d in derivation.symbols for lo, hi in [derivation.dim_range(d)]}


def memory_problem(derivation: Derivation, sizes: Mapping[str, int], what: str = "the point") -> str | None:
    """A one-line refusal if checking at ``sizes`` would need more memory than allowed, else None."""
    need, limit = point_bytes(derivation, sizes), memory_limit()
    if need <= limit:
        return None
    where = ", ".join(f"{k}={v}" for k, v in sizes.items())
    return (
        f"{what} ({where}) would need about {need / 2**30:.3g} GiB, more than the {limit / 2**30:.3g} GiB allowed"
        " (set smaller dims=, or VERIGRAD_MAX_MEMORY in bytes)"
    )
