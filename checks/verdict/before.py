"""The checks every witness set shares before the references, and what every mode does after them.

Before: the inputs, a finite deterministic forward that leaves its inputs alone (in both namespaces, or
in the one it runs in), the analytic gradients called twice. After: one gradient judged
(checks/verdict/judge.py), the graph's suspect named, the report concluded. checks/verdict/point.py
(three witnesses) and checks/verdict/fd_only.py (a forward that runs in one namespace) both build on it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import ERROR, FAIL, PASS, Blame, GradientReport, Point, Problem, Report
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.calls import call_gradients, changed_in_place, copies, forward_mutation_warnings, mutation_warnings, nondeterministic
from verigrad.checks.verdict.judge import judge_point
from verigrad.reference import (
    NUMPY,
    BatchedObjective,
    FDEstimate,
    ForwardError,
    custom_functions,
    forward_noise,
    forward_value_in,
    forward_value_torch,
)


def error_report(rep: Report, message: str, started: float) -> Report:
    """``rep`` as an error with one line saying why the point could not be checked."""
    rep.status = ERROR
    rep.message = message
    rep.duration_s = time.perf_counter() - started
    return rep


def inner_length(derivation: Derivation, sizes: Mapping[str, int]) -> int:
    """L of τ_ex: the sum of all dims, symbolic (expression dims included) and fixed (a bound on the forward's
    inner-product lengths)."""
    return sum(derivation.all_sizes(sizes).values()) + sum(d for s in derivation.shapes.values() for d in s if isinstance(d, int))


@dataclass
class Checked:
    """A point that every check before the references passed: its arrays, the analytic gradients (or the
    exception they raised), L of τ_ex and f at the point in NumPy (deterministic: the same value every time)."""

    rep: Report
    started: float
    params: dict[str, np.ndarray]
    grad_output: np.ndarray | None
    analytic: dict[str, Any] | None
    raised: str | None
    total_dims: int
    f0: float


@dataclass
class Prepared(Checked):
    """What every mode needs before differencing: the checked point, autograd and its rounding noise σ."""

    auto: dict[str, np.ndarray]
    sigma: dict[str, Any]


def forward_problem_in(
    derivation: Derivation, namespace: str, params: dict[str, np.ndarray], g_out, written: list[str] | None = None
) -> tuple[float | None, str | None]:
    """(f at the point, None), or (None, why the forward cannot be a witness there): it raises, is not finite,
    or not deterministic — all in ``namespace``. The arguments it writes into are added to ``written``: every
    evaluation hands it copies, so it is judged on its values all the same."""
    try:
        args = copies(params)
        f1 = forward_value_in(derivation, namespace, args, g_out)
        if written is not None:
            written.extend(changed_in_place(params, args))
        again = [forward_value_in(derivation, namespace, copies(params), g_out) for _ in range(tol.DETERMINISM_REPEATS)]
    except ForwardError as e:
        return None, str(e)
    if not np.isfinite(f1):
        return None, f"forward is not finite at the point (f = {f1})"
    differs = [f for f in again if f != f1]
    if differs:
        return None, f"forward is not deterministic: evaluations at the same point gave {f1!r} and {differs[0]!r}"
    return f1, None


def forward_problem(
    derivation: Derivation, params: dict[str, np.ndarray], g_out: np.ndarray | None, written: list[str] | None = None
) -> tuple[float | None, str | None]:
    """(f at the point in NumPy, None), or (None, why the forward cannot be a witness there): as
    ``forward_problem_in`` NumPy, and the same value under torch (``torch_problem``)."""
    f1, problem = forward_problem_in(derivation, NUMPY, params, g_out, written)
    if problem:
        return None, problem
    problem = torch_problem(derivation, params, g_out, f1)
    return (None, problem) if problem else (f1, None)


def numpy_forward_problem(
    derivation: Derivation, params: dict[str, np.ndarray], g_out: np.ndarray | None, written: list[str] | None = None
) -> tuple[float | None, str | None]:
    """``forward_problem`` without its torch evaluation: for a point whose stack evaluates the forward under torch at
    the point itself (its unperturbed row), which must then agree with f in NumPy (``torch_agrees``); where the
    stack cannot serve the point, ``torch_problem`` is asked before anything else is judged."""
    return forward_problem_in(derivation, NUMPY, params, g_out, written)


def torch_agrees(f_numpy: float, f_torch: float, rounding: float = 0.0) -> bool:
    """Whether f under torch is f in NumPy up to the rounding of another summation order: ``BACKEND_RTOL`` of |f|,
    or ``BACKEND_NOISE`` times ``rounding``, ε_f of the NumPy forward at the point (``numpy_rounding``)."""
    diff = abs(f_torch - f_numpy)
    return bool(diff <= tol.BACKEND_RTOL * max(abs(f_numpy), abs(f_torch)) or diff <= tol.BACKEND_NOISE * rounding)


def numpy_rounding(derivation: Derivation, params: dict[str, np.ndarray], g_out: np.ndarray | None, f1: float) -> float:
    """ε_f of the forward in NumPy at the point, measured as the finite differences measure it (``forward_noise``):
    its spread over copies jittered by a few ulps, and its rounding along a line at the steps' scale, which a
    saturated intermediate (tanh(z) near ±1) needs; every evaluation seeded as every call at the point."""
    return forward_noise(BatchedObjective(derivation, params, g_out, f0=f1), np.random.default_rng(0), line=True)


def torch_problem(derivation: Derivation, params: dict[str, np.ndarray], g_out: np.ndarray | None, f1: float) -> str | None:
    """Why the forward evaluated once under torch at the point is not a witness there (it raises, or its value is
    not ``f1``, NumPy's, up to rounding: ``torch_agrees``, its NumPy rounding measured only where |f| alone is too
    small a scale), or None."""
    try:
        f_torch = forward_value_torch(derivation, params, g_out)
        agrees = torch_agrees(f1, f_torch) or torch_agrees(f1, f_torch, numpy_rounding(derivation, params, g_out, f1))
    except ForwardError as e:
        return str(e)
    if not agrees:
        return (
            f"forward gives {f1!r} under NumPy but {f_torch!r} under torch at the same point: it is not deterministic,"
            " or it depends on the array library"
        )
    return None


def blank_report(derivation: Derivation, point: Point, mode: str) -> Report:
    """A passing report of ``derivation`` at ``point`` with nothing judged yet (the point's notes as warnings)."""
    rep = Report(name=derivation.name, status=PASS, shapes=dict(point.sizes), point_seed=point.seed, examples=1, points=1, mode=mode)
    rep.warnings.extend(point.notes)
    return rep


#: (derivation, params, grad_output, written) -> (f, problem), as ``forward_problem``.
ForwardCheck = Callable[[Derivation, dict[str, np.ndarray], Any, list[str]], tuple[float | None, str | None]]


def checked_with(derivation: Derivation, point: Point, rep: Report, started: float, forward_check: ForwardCheck) -> Checked | Report:
    """The forward checked as a witness by ``forward_check`` (``forward_problem``, or ``forward_problem_in`` one
    namespace), then the analytic gradients: a warning if either wrote into its arguments (both are judged on
    their values: they are handed copies), an error if the gradients are not a function of the point."""
    params = copies(point.params)
    g_out = None if point.grad_output is None else np.array(point.grad_output, dtype=np.float64)
    written: list[str] = []
    f0, problem = forward_check(derivation, params, g_out, written)
    rep.forward_modified_in_place = list(dict.fromkeys(written))
    rep.warnings.extend(forward_mutation_warnings(rep.forward_modified_in_place))
    if problem:
        return error_report(rep, problem, started)
    analytic, raised, modified = call_gradients(derivation, point)
    rep.modified_in_place = list(modified)
    rep.warnings.extend(mutation_warnings(modified))  # judged all the same: they were handed copies
    if raised is None and analytic is not None and (changing := nondeterministic(derivation, point, analytic)):
        return error_report(rep, changing, started)
    return Checked(rep, started, params, g_out, analytic, raised, inner_length(derivation, point.sizes), f0)


def judge_param(prep: Prepared, name: str, fd: FDEstimate) -> GradientReport:
    """The verdict on one parameter given its finite-difference estimate (all entries, or some)."""
    auto = prep.auto[name]
    if prep.raised is not None:
        g = GradientReport(param=name, status=FAIL, blame=Blame.ANALYTIC, entries=int(auto.size))
        g.message, g.problem, g.raised = f"gradients raised {prep.raised}", Problem.RAISED, prep.raised
        g.reference = auto
        g.nondiff_mask = fd.nondifferentiable
        return g
    return judge_point(name, prep.analytic.get(name), auto, fd, prep.sigma[name], prep.total_dims)


def name_graph_cause(derivation: Derivation, params: dict[str, np.ndarray], grad_output, rep: Report) -> None:
    """Each gradient blamed on the graph says what in the forward's torch graph can make it differ from the function."""
    wrong = [g for g in rep.gradients if g.blame == Blame.GRAPH]
    if not wrong:
        return
    try:
        names = custom_functions(derivation, params, grad_output)
    except ForwardError:  # it ran at this point before; nothing more to say if it does not now
        return
    if names:
        cause = (f"the forward's torch graph goes through torch.autograd.Function {', '.join(names)}:"
                 " its hand-written backward is the suspect")
    else:
        cause = ("no custom torch.autograd.Function is in the forward's torch graph: a value taken out of the graph"
                 " (float(), .item(), .detach(), a NumPy round trip) is the suspect: autograd sees a constant where the function varies")
    for g in wrong:
        g.warnings.append(cause)


def resolution(g: GradientReport) -> float | None:
    """The smallest error the judgement of ``g`` could have seen: the threshold the analytic values were held
    to (τ_ex against an exact witness; K_FD·e + τ at its largest where finite differences stood alone), relative to
    max |reference| over the finite entries; None where nothing was compared."""
    thr, ref = g.threshold.get("analytic_vs_autograd"), g.reference
    if thr is None or ref is None or not np.size(ref):
        return None
    r = np.abs(np.asarray(ref, dtype=np.float64))
    scale = float(r.max(initial=0.0))
    if not math.isfinite(scale):  # some entry is not: the largest finite one
        scale = float(np.max(r[np.isfinite(r)], initial=0.0))
    return thr / scale if scale > 0 else None


def conclude(rep: Report, started: float) -> Report:
    """The derivation's status and one-line message from its gradients' verdicts."""
    for g in rep.gradients:
        g.resolution = resolution(g) if g.resolution is None else g.resolution
    failures = rep.failures
    if failures:
        rep.status = FAIL
        first = failures[0]
        rep.message = first.message or (
            f"∂f/∂{first.param}: {first.mismatches} of {first.entries} entries disagree (max abs err {first.max_abs_err:.3g})"
        )
    rep.duration_s = time.perf_counter() - started
    return rep
