"""The intermediates of a forward that runs under NumPy only, with ∂f/∂(each) by finite differences.

The forward runs once under ``sys.settrace``: after each statement of the user's frames (the forward and the
helpers it calls; not NumPy's, the standard library's or this package's), every float array a local holds that
is new or whose values changed is a version of that local. The last version of each local of each call is an
intermediate, named after the local (``x_hat``, ``next_c``); a helper's arguments are its caller's values, and
an array two locals hold is kept once, under the name of the outermost frame (``i = sigmoid(...)`` is ``i``).

∂f/∂(an intermediate) at entry k is a central difference of f in which the forward runs again, traced, and the
entry is moved by ±h in place at the very point the intermediate was made (the same statement of the same call):
f then depends on it as the rest of the forward uses it. Steps h, h/2 and h/4 give the estimate and its error
bound by the error model of ``_fd`` (``richardson``: truncation and rounding, ε_f measured by jitter; an entry
where the forward is not differentiable within the step has an unbounded error). Each entry costs six runs of
the forward, so at most ``budget`` entries are taken in all: the parameters first, then the intermediates of the
forward's own frame, in the order they were made, then those of helpers and of loops (a local a statement made
more than once is a loop's scratch, of least use); the parameters the caller asks for come before them all (the
failing gradients' ∂f/∂param, which the slip's search starts from), the other parameters after.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np

from verigrad.analytic import Derivation

from ._batched import forward_value
from ._fd import noise_from_jitter, richardson, steps_for
from ._objective import ForwardError
from ._quantities import Intermediates, Quantity, is_user_file
from .constants import JITTER_POINTS, JITTER_ULPS, U64

__all__ = ["numpy_intermediates"]

#: The steps each entry is differenced at, as fractions of h (``_fd.richardson``'s h, h/2, h/4).
_FRACTIONS = (1.0, 0.5, 0.25)


def _float_array(obj: Any) -> bool:
    return isinstance(obj, np.ndarray) and obj.dtype.kind == "f" and obj.size > 0


@dataclass
class _Version:
    """The last value a local of one call held: where it was made (the call's serial, the event after which)."""

    serial: int
    event: int
    name: str
    line: int
    value: np.ndarray
    obj: Any  # the array itself, kept alive so that its id stays its own
    repeated: bool = False  # the same statement of the call made it more than once (a loop)


@dataclass
class _Frame:
    serial: int
    line: int
    events: int = 0
    known: dict[str, tuple[int, np.ndarray]] | None = None
    made_at: dict[tuple[str, int], int] | None = None  # (local, line) -> how many versions that line made


class _Recorder:
    """The recording run's trace function (module docstring)."""

    def __init__(self) -> None:
        self.serial = 0
        self.frames: dict[FrameType, _Frame] = {}
        self.versions: dict[tuple[int, str], _Version] = {}

    def __call__(self, frame: FrameType, event: str, arg: Any):
        if event != "call" or not is_user_file(frame.f_code.co_filename):
            return None
        code = frame.f_code
        args = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        known = {n: (id(v), v.copy()) for n in args if _float_array(v := frame.f_locals.get(n))}
        self.frames[frame] = _Frame(self.serial, frame.f_lineno, known=known, made_at={})
        self.serial += 1
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any):
        state = self.frames.get(frame)
        if state is None or event not in ("line", "return"):
            return self._local
        for name, obj in list(frame.f_locals.items()):
            if not _float_array(obj):
                continue
            before = state.known.get(name)
            if before is not None and before[0] == id(obj) and before[1].shape == obj.shape and np.array_equal(before[1], obj, equal_nan=True):
                continue
            value = obj.copy()
            state.known[name] = (id(obj), value)
            count = state.made_at[(name, state.line)] = state.made_at.get((name, state.line), 0) + 1
            self.versions[(state.serial, name)] = _Version(state.serial, state.events, name, state.line, value, obj, count > 1)
        state.events += 1
        state.line = frame.f_lineno
        if event == "return":
            del self.frames[frame]
        return self._local

    def kept(self) -> list[_Version]:
        """The intermediates: one per array object (under its outermost name), in the order of the budget."""
        by_object: dict[int, _Version] = {}
        for v in sorted(self.versions.values(), key=lambda v: v.serial):
            by_object.setdefault(id(v.obj), v)
        return sorted(by_object.values(), key=lambda v: (v.repeated, v.serial != 0, v.serial, v.event))


class _Nudge:
    """A run's trace function that sets one entry of one intermediate at the point it was made."""

    def __init__(self, version: _Version, entry: int, value: float) -> None:
        self.v, self.entry, self.value = version, entry, value
        self.serial = 0
        self.events = 0
        self.done = False

    def __call__(self, frame: FrameType, event: str, arg: Any):
        if event != "call" or not is_user_file(frame.f_code.co_filename):
            return None
        serial, self.serial = self.serial, self.serial + 1
        return self._local if serial == self.v.serial else None

    def _local(self, frame: FrameType, event: str, arg: Any):
        if event in ("line", "return"):
            if self.events == self.v.event and not self.done:
                obj = frame.f_locals.get(self.v.name)
                if _float_array(obj) and obj.shape == self.v.value.shape and obj.flags.writeable:
                    obj[np.unravel_index(self.entry, obj.shape)] = self.value
                    self.done = True
            self.events += 1
        return self._local


def _traced(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None, tracer: Any) -> float:
    """f at a copy of ``params`` under ``tracer``; ForwardError where the forward raised (user code: forward_value)."""
    copies = {k: np.array(v, dtype=np.float64, copy=True) for k, v in params.items()}
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        return forward_value(derivation, copies, grad_output)
    finally:
        sys.settrace(previous)


def _run(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None, tracer: Any = None) -> float:
    """f as ``_traced``, NaN where the forward raised or a nudge found no place to go (that entry is then unknown)."""
    try:
        f = _traced(derivation, params, grad_output, tracer)
    except ForwardError:
        return float("nan")
    return f if not isinstance(tracer, _Nudge) or tracer.done else float("nan")


def _noise(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None, f0: float) -> float:
    """ε_f: the spread of f over JITTER_POINTS copies of the point jittered by a few ulps (``_fd``'s model)."""
    rng = np.random.default_rng(0)
    jit = []
    for _ in range(JITTER_POINTS):
        moved = {k: v * (1 + JITTER_ULPS * U64 * 2 * rng.uniform(-1, 1, np.shape(v))) for k, v in params.items()}
        jit.append(_run(derivation, moved, grad_output))
    return float(noise_from_jitter(np.array([jit]), np.array([f0]))[0])


def _differences(f_at, x: np.ndarray, f0: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """(∂f/∂x, its error bound) per entry, ``f_at(entry, value)`` giving f with that entry of x set to value."""
    flat = x.reshape(-1)
    h = steps_for(flat)
    d, fs = [], []
    for k in _FRACTIONS:
        xp, xm = flat + k * h, flat - k * h
        fp = np.array([f_at(i, xp[i]) for i in range(flat.size)])
        fm = np.array([f_at(i, xm[i]) for i in range(flat.size)])
        d.append((fp - fm) / (xp - xm))
        fs.append((fp, fm))
    with np.errstate(invalid="ignore"):
        value, error, kinked = richardson(*d, *fs[0], *fs[2], f0, h, noise / h)
    error = np.where(kinked | ~np.isfinite(value), np.inf, error)
    return np.where(np.isfinite(value), value, 0.0).reshape(x.shape), error.reshape(x.shape)


def numpy_intermediates(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None, budget: int,
                        first: Sequence[str] = ()) -> Intermediates:
    """The parameters and intermediates of a NumPy-only forward at ``params``, ∂f/∂each by finite differences
    with its error bound, up to ``budget`` entries in all (module docstring): the parameters in ``first``, then
    the intermediates, then the other parameters."""
    g = None if grad_output is None else np.array(grad_output, dtype=np.float64)
    recorder = _Recorder()
    try:
        f0 = _traced(derivation, params, g, recorder)
    except ForwardError as e:
        return Intermediates(problem=f"the forward raised under NumPy: {' '.join(str(e).split())}")
    noise = _noise(derivation, params, g, f0)

    def of_param(name: str) -> Quantity:
        def f_at(i: int, value: float) -> float:
            moved = dict(params)
            moved[name] = np.array(moved[name], dtype=np.float64, copy=True)
            moved[name].reshape(-1)[i] = value
            return _run(derivation, moved, g)

        x = np.asarray(params[name], dtype=np.float64)
        grad, error = _differences(f_at, x, f0, noise)
        return Quantity(name, x.copy(), grad, None, True, error)

    def of_version(v: _Version) -> Quantity:
        nudge = lambda i, value: _run(derivation, params, g, _Nudge(v, i, value))
        grad, error = _differences(nudge, v.value, f0, noise)
        return Quantity(v.name, v.value, grad, v.line, False, error)

    plan = [(np.size(params[n]), lambda n=n: of_param(n)) for n in params if n in first]
    plan += [(v.value.size, lambda v=v: of_version(v)) for v in recorder.kept()]
    plan += [(np.size(params[n]), lambda n=n: of_param(n)) for n in params if n not in first]
    out, left, cut = [], budget, False
    for size, take in plan:
        if size > left:
            cut = True
            continue
        left -= size
        q = take()
        if q.param or not (np.all(q.grad == 0) and np.all(np.isfinite(q.error))):  # else f does not move with it
            out.append(q)
    out.sort(key=lambda q: not q.param)  # the parameters first, as autograd's quantities
    if not any(not q.param for q in out):
        return Intermediates(out, problem="the forward computes no NumPy intermediates that f depends on", cut=cut)
    return Intermediates(out, cut=cut)
