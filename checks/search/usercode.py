"""Whether an exception came out of the user's code: the one test by which the search's catches tell a
derivation that failed from a harness bug (which must surface as a traceback).

An exception is the user's when its traceback passes through the derivation's ``forward``,
``gradients`` or ``kinks`` (every frame between the catch and the raise is in the traceback, so a
helper the user's function calls counts too), when it is a KinksError (checks/search/points.py), or
when torch's autograd engine raised it while differentiating the user's forward (a derivative that
is not implemented, an in-place change autograd cannot undo): its innermost frame is in torch.autograd.
"""

from __future__ import annotations

import functools
import os
from types import CodeType

from verigrad.analytic import Derivation
from verigrad.checks.search.points import KinksError


def _codes(fn: object) -> set[CodeType]:
    if fn is None:
        return set()
    if isinstance(fn, type):  # a torch.autograd.Function subclass: its forward and backward
        return {c for name in ("forward", "backward") for c in _codes(getattr(fn, name, None))}
    code = getattr(fn, "__code__", None) or getattr(vars(type(fn)).get("__call__"), "__code__", None)
    return {code} if code is not None else set()


@functools.cache
def _autograd_dir() -> str:
    import torch.autograd

    return os.path.dirname(os.path.abspath(torch.autograd.__file__)) + os.sep


def source_location(derivation: Derivation) -> dict[str, object] | None:
    """File and first line of the hand-derived gradients (a Function's ``backward``); None for a builtin callable."""
    fn = derivation.gradients
    if isinstance(fn, type):
        fn = getattr(fn, "backward", None)
    code = getattr(fn, "__code__", None) or getattr(vars(type(fn)).get("__call__"), "__code__", None)
    if code is None:
        return None
    return {"file": os.path.abspath(code.co_filename), "line": code.co_firstlineno}


def raised_in_user_code(derivation: Derivation, error: BaseException) -> bool:
    """Whether ``error`` came out of ``derivation``'s own code (see the module docstring)."""
    if isinstance(error, KinksError):
        return True
    codes = _codes(derivation.forward) | _codes(derivation.gradients) | _codes(derivation.kinks) | _codes(derivation.hvp) | _codes(derivation.jvp)
    tb, last = error.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        last, tb = tb, tb.tb_next
    return last is not None and os.path.abspath(last.tb_frame.f_code.co_filename).startswith(_autograd_dir())
