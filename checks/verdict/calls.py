"""Calls of the user's code at a point: the inputs it is handed, its hand-derived gradients, and
whether it wrote into its arguments."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import Point
from verigrad.reference import NUMPY_GLOBAL, RANDOM, TORCH_GLOBAL, user_call


def copies(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fresh float64 copies, so that user code never holds the arrays the check compares with."""
    return {k: np.array(v, dtype=np.float64, copy=True) for k, v in params.items()}


def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype == b.dtype and a.dtype.kind in "biuf" and a.tobytes() == b.tobytes():  # the common case: untouched
        return True
    return bool((a == b).all()) or np.array_equal(a, b, equal_nan=True)  # the slow test only if some entry differs


def changed_in_place(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> list[str]:
    """Names whose array changed (NaN equals NaN)."""
    return [k for k in before if not _same(before[k], after[k])]


def check_inputs(derivation: Derivation, point: Point) -> str | None:
    """Why the point's values cannot be checked (complex, not floating, not finite), or None."""
    arrays = dict(point.params)
    if point.grad_output is not None:
        arrays["grad_output"] = point.grad_output
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "c":  # complex floating point
            return f"parameter {name} is complex ({arr.dtype}); verigrad checks real-valued parameters"
        if arr.dtype.kind != "f":  # not real floating point
            return f"parameter {name} has dtype {arr.dtype}; pass floating-point values (they are checked in float64)"
        if not np.isfinite(arr).all():
            return f"parameter {name} contains non-finite values"
    return None


@dataclass(frozen=True)
class Unreadable:
    """A returned gradient NumPy cannot read as an array (a ragged list, a torch tensor on a GPU, an
    object whose ``__array__`` raises): the exception, in one line."""

    reason: str


def readable(value: Any) -> Any:
    """``value`` as a NumPy array (None stays None: no entry), or ``Unreadable`` saying why it is not one.
    The only place returned gradient values are converted, so that every path judges the same arrays.
    A torch tensor is read detached: that it still requires grad says nothing about its values."""
    if value is None:
        return None
    torch = sys.modules.get("torch")  # a tensor can only come from a process that imported torch
    try:
        if torch is not None and isinstance(value, torch.Tensor):
            value = value.detach()
        return np.asarray(value)
    except Exception as e:  # user code: the object's __array__, __len__ or __getitem__
        text = str(e).strip().splitlines()
        return Unreadable(f"{type(e).__name__}: {text[0]}" if text else type(e).__name__)


def as_arrays(returned: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The returned dict with the values of ``names`` (the derivation's parameters) read as arrays; other
    keys, which the check ignores, are kept as they are."""
    out = dict(returned)
    for name in names:
        if name in out:
            out[name] = readable(out[name])
    return out


#: How every warning about gradients that wrote into their arguments begins.
MUTATION_HEAD = "gradients modified "


def mutation_warnings(modified: Iterable[str]) -> list[str]:
    """One warning per argument the gradients wrote into. The verdict is on their values all the same (they
    were handed copies), but a caller who hands them its own arrays gets those arrays changed."""
    out = []
    for name in modified:
        if name == "grad_output":
            out.append(f"{MUTATION_HEAD}grad_output in place (dx = dout; dx[...] = ...): its caller's upstream gradient is changed;"
                       " write into a copy (dx = dout.copy())")
        else:
            out.append(f"{MUTATION_HEAD}their input {name} in place ({name}[...] = ..., {name} *= ...): its caller's {name} is changed;"
                       f" write into a copy ({name}.copy())")
    return out


#: How every warning about a forward that wrote into its arguments begins.
FORWARD_MUTATION_HEAD = "forward modified "


def forward_mutation_warnings(modified: Iterable[str]) -> list[str]:
    """One warning per argument the forward wrote into. It was judged on its values all the same (every evaluation
    was handed copies of the point), but a caller that hands it its own arrays gets those arrays changed."""
    return [f"{FORWARD_MUTATION_HEAD}its input {name} in place ({name} -= ..., {name}[...] = ...): judged on copies,"
            f" but its caller's {name} is changed; write into a copy ({name} = {name}.copy())" for name in modified]


#: How each global generator is named in the note that says the code drew from it.
GENERATOR_WORDS = {NUMPY_GLOBAL: "NumPy's global generator (np.random)", RANDOM: "Python's random module", TORCH_GLOBAL: "torch's default generator"}


def global_draw_notes(generators: Iterable[str]) -> list[str]:
    """One note per global generator the code drew from (reference/_global_rng.py): it was checked as it is."""
    return [f"the code draws from {GENERATOR_WORDS[g]}: it was seeded from the point's seed before every call of the forward"
            " and the gradients, so the code was checked as it is, with the same draws at every call at a point and on a replay"
            for g in generators]


#: The report fields that name what user code did at some point of a search, each with the words of its warnings:
#: the search carries every name any point showed into the report it gives (checks/search/coverage.py).
CARRIED = (
    ("modified_in_place", mutation_warnings),
    ("forward_modified_in_place", forward_mutation_warnings),
    ("global_generators", global_draw_notes),
)


def call_gradients(derivation: Derivation, point: Point) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """The hand-derived gradients at the point, called on copies of its arrays: (gradients, exception text,
    names modified in place). Values written into the copies change nothing the check compares with."""
    args = copies(point.params)
    before = dict(point.params)  # never handed to user code: what the arguments must still be
    if derivation.is_layer:
        args["grad_output"] = np.array(point.grad_output, dtype=np.float64, copy=True)
        before["grad_output"] = point.grad_output
    try:
        with np.errstate(all="ignore"):
            out = user_call(derivation.gradients, **args)
    except Exception as e:  # user code
        return None, f"{type(e).__name__}: {e}", []
    modified = changed_in_place(before, args)
    if not isinstance(out, Mapping):
        return None, f"gradients returned {type(out).__name__}, expected a dict {{param: array}}", modified
    return as_arrays(out, derivation.params), None, modified


def _same_values(a: Any, b: Any) -> bool:
    """Two returned values are the same: equal arrays of one dtype (NaN equals NaN), or both no array."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return isinstance(a, np.ndarray) == isinstance(b, np.ndarray)  # None or Unreadable both times: admit says why
    if a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
        return a.dtype == b.dtype  # object or complex values fail admit whatever they hold; never call their __eq__
    return a.dtype == b.dtype and _same(a, b)


def differing(derivation: Derivation, first: Mapping[str, Any], second: Mapping[str, Any]) -> str | None:
    """Why two calls of the gradients at the same point are not the same result (the first checked
    parameter whose values differ), or None."""
    for name in derivation.check:
        if not _same_values(first.get(name), second.get(name)):
            return f"gradients are not deterministic: ∂f/∂{name} differs between two calls at the same point"
    return None


def nondeterministic(derivation: Derivation, point: Point, first: Mapping[str, Any]) -> str | None:
    """Why the hand-derived gradients are not a function of the point: called once more there, they give
    other values or raise. One call more than the check needs, as the forward is evaluated again."""
    again, raised, _ = call_gradients(derivation, point)
    if raised is not None:
        return f"gradients are not deterministic: a second call at the same point raised {raised}"
    return differing(derivation, first, again)


def gradients_at(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None) -> Mapping[str, Any] | None:
    """The hand-derived gradients at another point (a jittered copy), or None if they cannot be had there:
    the verdict at the point itself reports what the gradients do wrong."""
    args = copies(params)
    if derivation.is_layer:
        args["grad_output"] = np.array(grad_output, dtype=np.float64, copy=True)
    try:
        with np.errstate(all="ignore"):
            there = user_call(derivation.gradients, **args)
    except Exception:  # user code
        return None
    return as_arrays(there, derivation.params) if isinstance(there, Mapping) else None
