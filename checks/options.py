"""Validation of the numbers users pass on command lines (the CLI's and the pytest plugin's options)."""

from __future__ import annotations

SEED_LIMIT = 2**32


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
