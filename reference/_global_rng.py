"""The global random generators user code may draw from, seeded identically before every call at a point.

A textbook ``Dropout`` draws its mask with ``np.random.rand(*x.shape) > ratio``: from NumPy's legacy global
generator, not from a seed it is given. Called twice at the same point it gives two masks, and no witness can
agree with it. So before every call of user code — the forward in every namespace and at every
finite-difference row, the hand-derived gradients, an adapter's forward-then-backward — the three global
generators (NumPy's legacy ``np.random``, Python's ``random``, torch's default generator) are seeded from the
point's seed (``seeded_at``), and the code is checked as it is: deterministic at a point, the same numbers on
a replay. A vmapped call runs the forward's Python once for all its rows, so every row sees the stream a
single call sees.

Which generators a call drew from is found by comparing each one after the call with its state right after
seeding (``user_call``), at the first call of each function at a point (the forward's own check, the
gradients' first call); the checks say so in the report, and only then. A function that drew from none there
is not seeded again at that point: it has nothing to seed, and the common case costs one comparison per
function and point instead of a seeding (about 10 µs) per call.
"""

from __future__ import annotations

import functools
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import numpy as np

from ._torch import Deferred

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)

__all__ = ["GENERATORS", "NUMPY_GLOBAL", "RANDOM", "TORCH_GLOBAL", "keeps_generators", "seeded_at", "user_call"]

#: The names of the global generators, as reports give them.
NUMPY_GLOBAL, RANDOM, TORCH_GLOBAL = "numpy.random", "random", "torch"
GENERATORS = (NUMPY_GLOBAL, RANDOM, TORCH_GLOBAL)
#: Seeds are taken modulo this (the range NumPy's legacy seed accepts).
SEED_RANGE = 2**32

_SEED: ContextVar[int] = ContextVar("verigrad_global_seed", default=0)
_DRAWN: ContextVar[set[str] | None] = ContextVar("verigrad_global_drawn", default=None)
#: Per function called at the point (by id): whether its first call there drew from a global generator.
_WATCHED: ContextVar[dict[int, bool] | None] = ContextVar("verigrad_global_watched", default=None)


@contextmanager
def seeded_at(seed: int | None) -> Iterator[set[str]]:
    """Every call of user code inside (``user_call``) is preceded by seeding the global generators from
    ``seed`` (None: 0); yields the set of the generators those calls drew from, filled as they run."""
    drawn: set[str] = set()
    tokens = (_SEED.set(int(seed or 0) % SEED_RANGE), _DRAWN.set(drawn), _WATCHED.set({}))
    try:
        yield drawn
    finally:
        for var, token in zip((_SEED, _DRAWN, _WATCHED), tokens, strict=True):
            var.reset(token)


@lru_cache(maxsize=1)
def _torch_generator() -> Any:
    return torch.random.default_generator


@lru_cache(maxsize=64)
def _first_draws(seed: int) -> tuple[float, float, bytes, Any]:
    """After seeding with ``seed``: NumPy's and Python's first uniform, torch's state (its bytes, which compare
    faster than the tensor), and Python's state (which ``random.setstate`` restores faster than ``random.seed``
    makes it)."""
    np.random.seed(seed)
    random.seed(seed)
    state = random.getstate()
    _torch_generator().manual_seed(seed)
    return np.random.random(), random.random(), _torch_state(), state


def _torch_state() -> bytes:
    return _torch_generator().get_state().numpy().tobytes()


def _seed(seed: int) -> None:
    python_state = _first_draws(seed)[3]  # first: on a new seed it draws from the generators seeded here
    np.random.seed(seed)
    random.setstate(python_state)
    _torch_generator().manual_seed(seed)


def _drawn_from(seed: int) -> list[str]:
    """The generators that moved since they were seeded with ``seed`` (NumPy's and Python's are read by one draw
    each, which the next call's seeding undoes)."""
    np_first, py_first, torch_state, _ = _first_draws(seed)
    out = []
    if np.random.random() != np_first:
        out.append(NUMPY_GLOBAL)
    if random.random() != py_first:
        out.append(RANDOM)
    if _torch_state() != torch_state:
        out.append(TORCH_GLOBAL)
    return out


def user_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` — user code — with the global generators seeded first from the point's seed
    (``seeded_at``) unless its first call at the point drew from none; the generators that first call drew from
    are added to the point's set. Its exceptions pass through."""
    seed, watched = _SEED.get(), _WATCHED.get()
    drew = None if watched is None else watched.get(id(fn))
    if drew is False:  # drew nothing at its first call at this point
        return fn(*args, **kwargs)
    _seed(seed)
    if watched is None or drew:  # outside a point (never watched), or known to draw
        return fn(*args, **kwargs)
    try:
        return fn(*args, **kwargs)
    finally:
        found = _drawn_from(seed)
        watched[id(fn)] = bool(found)
        _DRAWN.get().update(found)


def keeps_generators(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` that leaves the caller's global generators as it found them: a check called in the caller's own
    process (the Python API, ``verigrad.gradcheck`` in a test suite) seeds them at every point, and the caller's
    next ``np.random.rand()`` must be the one it would have drawn without the check."""

    @functools.wraps(fn)
    def kept(*args: Any, **kwargs: Any) -> Any:
        numpy_state, python_state = np.random.get_state(), random.getstate()
        torch_state = _torch_generator().get_state() if "torch" in sys.modules else None
        try:
            return fn(*args, **kwargs)
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)
            if torch_state is not None:
                _torch_generator().set_state(torch_state)

    return kept
