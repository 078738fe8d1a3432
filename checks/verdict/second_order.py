"""Second order and forward mode at one point: a hand-derived H·v (``hvp=``) or J·v (``jvp=``), one verdict per
parameter (per output for J·v) by the one judge (checks/verdict/judge.py::judge_point).

For a direction v (reference/_second_order.py::direction, on the checked parameters):

* H·v: the analytic ``hvp(v, **params)`` against autograd's double backward (the gradient of ⟨∇f, v⟩), where the
  forward runs under torch, and against the differences of the hand-written ``gradients`` along v — or, where
  those fail at the point, of autograd's gradient; with neither exact witness, the differences alone judge
  (checks/verdict/fd_only.py::two_witnesses), as for a NumPy-only forward's gradient;
* J·v: the analytic ``jvp(v, **params)`` against torch's forward-mode AD and the differences of the forward along v.

τ_ex is the first order's (docs/tolerances.md §12): σ is the change of the exact witness and of the analytic value
under AUTOGRAD_JITTERS jitters of FALLBACK_JITTER_EPS machine epsilons (the rounding noise where no higher derivative
is at hand to take the true change out), the analytic's capped at ANALYTIC_NOISE_CAP·max|t| as at first order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import ERROR, FAIL, Blame, GradientReport, Point, Problem, Quantity, Witness
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.before import inner_length, resolution
from verigrad.checks.verdict.calls import copies
from verigrad.checks.verdict.fd_only import two_witnesses
from verigrad.checks.verdict.judge import judge_point
from verigrad.reference import (
    TORCH,
    ForwardError,
    along,
    autograd_gradients,
    autograd_hvp,
    direction,
    forward_ad_jvp,
    forward_output,
    namespaces,
    np_xp,
    user_call,
)

__all__ = ["OUTPUT", "Operator", "hvp_at", "judge_tangents", "jvp_at"]

EPS64 = float(np.finfo(np.float64).eps)
#: The key of a scalar forward's J·v (a layer's is its output's).
OUTPUT = "output"


@dataclass
class Operator:
    """One point's linear operators, for the diagnosis: the analytic and the reference product along any v."""

    analytic: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    reference: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    v: dict[str, np.ndarray]
    reports: list[GradientReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _call_hvp(d: Derivation, point: Point, v: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    args = copies(point.params if params is None else params)
    if d.is_layer:
        args["grad_output"] = np.array(point.grad_output, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = user_call(d.hvp, copies(v), **args)
    if not isinstance(out, Mapping):
        raise TypeError(f"hvp returned {type(out).__name__}, expected a dict {{param: array}}")
    return dict(out)


def _call_jvp(d: Derivation, v: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]) -> dict[str, Any]:
    with np.errstate(all="ignore"):
        return {OUTPUT: np.asarray(user_call(d.jvp, copies(v), **copies(params)))}


def _gradients(d: Derivation, point: Point) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    def g(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = copies(params)
        if d.is_layer:
            args["grad_output"] = np.array(point.grad_output, dtype=np.float64)
        with np.errstate(all="ignore"):
            out = user_call(d.gradients, **args)
        return {n: np.asarray(out[n], dtype=np.float64) for n in d.check}

    return g


def _autograd_gradients(d: Derivation, point: Point) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    return lambda params: {n: a for n, a in autograd_gradients(d, params, point.grad_output).items() if n in d.check}


def _noise(exact: Callable, analytic: Callable, point: Point, t: Mapping[str, np.ndarray], a: Mapping[str, Any], rng) -> dict[str, np.ndarray]:
    """σ per entry: the change of the exact witness and of the analytic value under tiny jitters (module docstring)."""
    sigma = {k: np.zeros(np.shape(t[k])) for k in t}
    for _ in range(tol.AUTOGRAD_JITTERS):
        rel = tol.FALLBACK_JITTER_EPS * EPS64
        p = {n: x + x * rel * rng.uniform(-1.0, 1.0, np.shape(x)) for n, x in point.params.items()}
        try:
            t2, a2 = exact(p), analytic(p)
        except Exception:  # user code, at a point a few ulps away: σ from the jitters measured so far
            break
        for k, before in sigma.items():
            cap = tol.ANALYTIC_NOISE_CAP * float(np.max(np.abs(t[k]), initial=0.0))
            with np.errstate(invalid="ignore"):
                da = _change(a2.get(k), a.get(k), np.shape(t[k]))
                step = np.maximum(np.abs(t2[k] - t[k]), np.minimum(da, cap))
            sigma[k] = np.maximum(before, np.where(np.isfinite(step), step, 0.0))
    return sigma


def _change(after: Any, before: Any, shape: tuple[int, ...]) -> Any:
    """|after − before| of a returned product where both are real arrays of the reference's shape, else 0 (the
    verdict refuses such a product on its own: admit)."""
    try:
        x, y = np.asarray(after, dtype=np.float64), np.asarray(before, dtype=np.float64)
    except (TypeError, ValueError):
        return 0.0
    if x.shape != shape or y.shape != shape:
        return 0.0
    d = np.abs(x - y)
    return np.where(np.isfinite(d), d, 0.0)


def _raised(keys, quantity: Quantity, what: str, e: Exception) -> list[GradientReport]:
    text = f"{type(e).__name__}: {e}"
    return [
        GradientReport(
            param=k, status=FAIL, blame=Blame.ANALYTIC, message=f"{what} raised {text}", problem=Problem.RAISED, raised=text, quantity=quantity
        )
        for k in keys
    ]


def _judge(keys, a: Mapping[str, Any], t: Mapping[str, np.ndarray] | None, fd, sigma, total: int, quantity: Quantity) -> list[GradientReport]:
    out = []
    for k in keys:
        if t is None:
            g = two_witnesses(k, a.get(k), fd[k], total)
            g.witness = Witness.FINITE_DIFFERENCES
        else:
            g = judge_point(k, a.get(k), t[k], fd[k], sigma[k], total)
        g.quantity = quantity
        g.resolution = resolution(g)
        out.append(g)
    return out


def _error(keys, quantity: Quantity, message: str) -> list[GradientReport]:
    return [GradientReport(param=k, status=ERROR, message=message, quantity=quantity) for k in keys]


def hvp_at(d: Derivation, point: Point, *, trusted: bool = True, seed: int = 0, device: str = "cpu") -> Operator:
    """The verdict on the hand-derived H·v of each checked parameter at ``point`` (``trusted``: the gradients passed
    there, so their differences witness H·v; else autograd's gradient is differenced)."""
    rng = np.random.default_rng(seed)
    keys = list(d.check)
    v = direction(point.params, keys, rng)
    exact = None
    if TORCH in namespaces(d, point.params, point.grad_output):
        exact = lambda p, w=None: autograd_hvp(d, p, point.grad_output, v if w is None else w, device)
    analytic = lambda p, w=None: _call_hvp(d, point, v if w is None else w, p)
    op = Operator(lambda w: _call_hvp(d, point, w), lambda w: exact(point.params, w) if exact else {}, v)
    try:
        a = analytic(point.params)
    except Exception as e:  # user code
        op.reports = _raised(keys, Quantity.HVP, "hvp", e)
        return op
    try:
        t = None if exact is None else exact(point.params)
    except ForwardError as e:
        op.notes.append(f"autograd has no double backward here ({e}): H·v judged by differences of the gradients alone")
        t, exact = None, None
    grads = _gradients(d, point) if trusted or exact is None else _autograd_gradients(d, point)
    if not trusted and exact is None:
        op.reports = _error(keys, Quantity.HVP, "the gradients fail at this point and autograd is not available: nothing witnesses H·v")
        return op
    if not trusted:
        op.notes.append("the hand-written gradients fail at this point: H·v judged against the differences of autograd's gradient")
    try:
        fd, _ = along(grads, point.params, v, rng)
    except Exception as e:  # user code (the gradients, or the forward under autograd)
        op.reports = _error(keys, Quantity.HVP, f"the differences of the gradients along v could not be taken: {type(e).__name__}: {e}")
        return op
    if exact is None:
        op.reference = lambda w: {k: e.value for k, e in along(grads, point.params, w, np.random.default_rng(seed))[0].items()}
    sigma = None if t is None else _noise(exact, analytic, point, t, a, rng)
    op.reports = _judge(keys, a, t, fd, sigma, inner_length(d, point.sizes), Quantity.HVP)
    return op


def jvp_at(d: Derivation, point: Point, *, seed: int = 0, device: str = "cpu") -> Operator:
    """The verdict on the hand-written J·v at ``point``: one report for the forward's output."""
    rng = np.random.default_rng(seed)
    keys = [OUTPUT]
    v = direction(point.params, list(d.check), rng)
    op = Operator(lambda w: _call_jvp(d, w, point.params), lambda w: {}, v)
    try:
        a = _call_jvp(d, v, point.params)
    except Exception as e:  # user code
        op.reports = _raised(keys, Quantity.JVP, "jvp", e)
        return op
    exact = None
    if TORCH in namespaces(d, point.params, point.grad_output):
        exact = lambda p: {OUTPUT: forward_ad_jvp(d, p, v, device)}
        try:
            t = exact(point.params)
        except ForwardError as e:
            op.notes.append(f"torch's forward-mode AD cannot run this forward ({e}): J·v judged by differences alone")
            exact = t = None
    else:
        t = None
    value = lambda p: {OUTPUT: np.asarray(forward_output(d, np_xp, p), dtype=np.float64)}
    if exact is not None:
        op.reference = lambda w: {OUTPUT: forward_ad_jvp(d, point.params, w, device)}
    else:
        op.reference = lambda w: {k: e.value for k, e in along(value, point.params, w, np.random.default_rng(seed))[0].items()}
    try:
        fd, _ = along(value, point.params, v, rng)
    except Exception as e:  # user code
        op.reports = _error(keys, Quantity.JVP, f"the differences of the forward along v could not be taken: {type(e).__name__}: {e}")
        return op
    sigma = None if t is None else _noise(exact, lambda p: _call_jvp(d, v, p), point, t, a, rng)
    op.reports = _judge(keys, a, t, fd, sigma, inner_length(d, point.sizes), Quantity.JVP)
    return op


def judge_tangents(
    analytic: Mapping[str, Any],
    value: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]],
    params: Mapping[str, np.ndarray],
    v: Mapping[str, np.ndarray],
    total_dims: int,
    *,
    unit: float = tol.U64,
    seed: int = 0,
) -> list[GradientReport]:
    """The verdict on hand-written tangents J·v of each output of ``value`` (``analytic``, in their own precision) by the
    differences of ``value`` along ``v`` alone, stepped for the outputs' precision ``unit`` (verigrad.gradcheck's
    ``check_forward_ad``: the forward-mode rule under test is the only exact one at hand)."""
    fd, _ = along(value, params, v, np.random.default_rng(seed), unit)
    return _judge(list(fd), analytic, None, fd, None, total_dims, Quantity.JVP)
