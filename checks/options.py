"""Validation of the numbers users pass on command lines and in the environment (the CLI's and the plugin's).

Each converter returns the value or raises ValueError with one line that names the value; the caller adds
the option's name. Non-finite numbers are refused everywhere: ``inf`` seconds cannot be armed as a timer,
and ``nan`` compares false with every bound, so it would silently mean "no limit".
"""

from __future__ import annotations

import math

SEED_LIMIT = 2**32
#: Longest time limit taken, in seconds (over three years): the interval timer overflows past ~1e9 s
#: on platforms with a 32-bit time_t, and anything longer is "no limit", which 0 already says.
MAX_SECONDS = 1e8


def whole_number(text: str, low: int | None = None, high: int | None = None) -> int:
    """``int(text)`` within [low, high); ValueError with a one-line message otherwise."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if low is not None and high is not None and not low <= value < high:
        bound = "2**32" if high == SEED_LIMIT else str(high)
        raise ValueError(f"expected {low} <= value < {bound}, got {value}")
    if low is not None and value < low:
        raise ValueError(f"expected a number >= {low}, got {value}")
    return value


def positive(text: str) -> int:
    return whole_number(text, 1)


def seed(text: str) -> int:
    return whole_number(text, 0, SEED_LIMIT)


def _finite(text: str, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected {what}, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A time limit in seconds: finite, 0 <= value <= MAX_SECONDS, where 0 means no limit."""
    what = f"a number of seconds from 0 (no limit) to {MAX_SECONDS:g}"
    value = _finite(text, what)
    if not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"expected {what}, got {text!r}")
    return value


def byte_count(text: str) -> int:
    """A memory size in bytes (``1e9`` is accepted): finite and >= 1."""
    what = "a finite number of bytes >= 1"
    value = _finite(text, what)
    if value < 1:
        raise ValueError(f"expected {what}, got {text!r}")
    return int(value)
