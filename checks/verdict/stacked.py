"""Exhaustive three-way checks of several points at the same sizes at once (as the search draws them).

The references for all the points come from a few stacked calls (reference.Stack), and the points are
judged together by the one judgement (checks/verdict/judge.py::judge_stacks), which a single point
gets as a stack of one. A point is passed here only when that judgement finds it clean: every entry
of every checked gradient within |a − t| ≤ τ_ex and |t − d| ≤ K_FD·e + τ_ex, no blame, no warning,
no switch within a finite-difference step, finite autograd. It must also be unremarkable before the
references: float64 gradients of the right shapes, a forward that gave the same value four times in
NumPy and (to rounding) under vmap. Every other point — a failure, an error, a warning, anything
unusual — is checked again alone by ``point.evaluate``, and that report is the one given. The
grouped path thus decides clean passes only: it cannot change a verdict on a wrong gradient or the
text of any message.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import ERROR, PASS, GradientReport, Point, Report
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.before import blank_report, error_report, inner_length
from verigrad.checks.verdict.calls import call_gradients, changed_in_place, check_inputs, copies, differing, nondeterministic
from verigrad.checks.verdict.judge import clean, judge_stacks, mark_unmeasured
from verigrad.checks.verdict.point import evaluate
from verigrad.checks.verdict.references import stacked_references
from verigrad.reference import U64, ForwardError, Stack, Unstackable, forward_value, seeded_at


def screen(derivation: Derivation, point: Point) -> tuple[dict[str, np.ndarray], float] | str | None:
    """(analytic gradients as float64 arrays, f in NumPy) when nothing about the point needs the single
    check's messages; why the gradients are not deterministic, if a second call says so; else None. Code that
    draws from a global generator is seeded per point (``point.seeded``), which a stack of points cannot be:
    None."""
    with seeded_at(point.seed) as drawn:
        found = _screen(derivation, point)
    return None if drawn and not isinstance(found, str) else found


def _screen(derivation: Derivation, point: Point) -> tuple[dict[str, np.ndarray], float] | str | None:
    if check_inputs(derivation, point) is not None or len(derivation.namespaces or "ab") == 1:  # one namespace: fd_only.py
        return None
    try:
        args = copies(point.params)
        f1 = forward_value(derivation, args, point.grad_output, shared=True)
        if changed_in_place(point.params, args) or not np.isfinite(f1):
            return None
        # As often as the single check (DETERMINISM_REPEATS in NumPy; the torch evaluation is the stack's
        # unperturbed row): a random forward is caught here as often as there.
        if any(forward_value(derivation, args, point.grad_output) != f1 for _ in range(tol.DETERMINISM_REPEATS)):
            return None
    except ForwardError:
        return None
    analytic, raised, modified = call_gradients(derivation, point)
    if raised is not None or modified or analytic is None or set(analytic) - set(derivation.params):
        return None
    # Called twice, as the single check calls them: a point judged with the stack must not be a call
    # that another call at the same point would contradict.
    changing = nondeterministic(derivation, point, analytic)
    if changing:
        return changing
    grads = {}
    for name in derivation.check:
        a = analytic.get(name)  # an array, None or Unreadable (calls.readable)
        if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != np.shape(point.params[name]) or not np.isfinite(a).all():
            return None
        grads[name] = a
    return grads, f1


def stacked_verdicts(derivation: Derivation, points: Sequence[Point], screened, fd_seed: int) -> list[Report | None]:
    """A passing Report for each point that is clean by the stacked references, None for the others.

    Judged with σ = 0 first: a point clean without σ is clean with it (τ_ex grows with σ). σ is measured for the
    stack only where some point the stack could pass (its batched forward agrees) is not clean without it, and
    then every point is judged with it. Where it was not measured, each passing gradient says so and measures it
    when asked (``GradientReport.remeasure``: once for the whole stack): the search does so for the point its
    figures are taken at (checks/search/coverage.py)."""
    started = time.perf_counter()
    stack = Stack(derivation, [p.params for p in points], None if not derivation.is_layer else [p.grad_output for p in points])
    refs = stacked_references(derivation, stack, [grads for grads, _ in screened], fd_seed)
    ok = refs.agrees(np.array([f for _, f in screened]))
    total_dims = inner_length(derivation, points[0].sizes)
    names = list(derivation.check)
    analytic = {n: np.stack([g[n] for g, _ in screened]) for n in names}

    def judge(sigma: dict[str, np.ndarray]) -> list[list[GradientReport]]:
        params = [(n, analytic[n], refs.auto[n], refs.fd[n], sigma[n], U64) for n in names]
        return judge_stacks(params, total_dims)

    def clean_at(parts: list[list[GradientReport]]) -> np.ndarray:
        return np.array([all(clean(per[i]) for per in parts) for i in range(len(points))])

    parts = judge(dict.fromkeys(names, np.zeros(len(points))))
    passed = clean_at(parts)
    lazy = bool(np.all(passed | ~ok))
    if not lazy:
        parts = judge(refs.measure_noise())
        passed = clean_at(parts)
    else:
        seed = points[0].seed

        @functools.cache
        def measured() -> list[list[GradientReport]] | None:
            try:
                with seeded_at(seed):  # code that drew nowhere in the screen: any seed serves
                    return judge(refs.measure_noise())
            except Unstackable:
                return None

        for i, p in enumerate(points):
            if passed[i] and ok[i]:
                mark_unmeasured([per[i] for per in parts], lambda i=i, p=p: _measured_at(derivation, p, measured(), i, fd_seed))
    ok &= passed
    each = (time.perf_counter() - started) / len(points)
    out: list[Report | None] = []
    for i, p in enumerate(points):
        if not ok[i]:
            out.append(None)
            continue
        rep = Report(name=derivation.name, status=PASS, shapes=dict(p.sizes), point_seed=p.seed, examples=1, points=1, mode="exhaustive")
        rep.warnings.extend(p.notes)
        rep.evaluations = int(refs.evaluations[i])
        rep.gradients = [per[i] for per in parts]
        rep.duration_s = each
        out.append(rep)
    return out


def _measured_at(derivation: Derivation, point: Point, parts: list[list[GradientReport]] | None, i: int, fd_seed: int) -> list[GradientReport]:
    """The gradients at point ``i`` of a stack judged with σ measured (``parts``); where the forward has no double
    backward (None), the point checked again alone with σ, as it would have been had σ been measured up front."""
    if parts is None:
        return evaluate(derivation, point, fd_seed=fd_seed, noise=True).gradients
    return [per[i] for per in parts]


def evaluate_group(
    derivation: Derivation,
    points: Sequence[Point],
    *,
    fd_seed: int = 0,
    single: Callable[[Point], Report] | None = None,
) -> Iterator[Report]:
    """``point.evaluate`` at each point (all of the same sizes), in order, with the clean passes
    decided together; ``single`` checks the others (default: ``evaluate``). Lazy: a caller that
    stops at the first failure spares the points after it their single checks."""
    single = single or (lambda p: evaluate(derivation, p, fd_seed=fd_seed))
    reports: list[Report | None] = [None] * len(points)
    looked = [screen(derivation, p) for p in points]
    for i, s in enumerate(looked):
        if isinstance(s, str):
            reports[i] = error_report(blank_report(derivation, points[i], "exhaustive"), s, time.perf_counter())
    screened = {i: s for i, s in enumerate(looked) if isinstance(s, tuple)}
    if len(screened) > 1:
        idx = list(screened)
        try:
            with seeded_at(points[idx[0]].seed) as drawn:  # code that drew nowhere in the screen: any seed serves
                got = stacked_verdicts(derivation, [points[i] for i in idx], [screened[i] for i in idx], fd_seed)
        except Unstackable:  # the stack could not run faithfully (see reference.Stack): one at a time
            got = [None] * len(idx)
        if drawn:  # it drew after all: each point's own seed, one at a time
            got = [None] * len(idx)
        for i, rep in zip(idx, got, strict=True):
            reports[i] = rep
    for i, (rep, p) in enumerate(zip(reports, points, strict=True)):
        yield rep if rep is not None else agreeing(derivation, single(p), screened.get(i))


def agreeing(derivation: Derivation, rep: Report, screened) -> Report:
    """The single check's report, or an error if the gradients it judged are not those the screen was
    given at the same point: a wrong gradient on one call in many must not pass by being called again."""
    if screened is None or rep.status == ERROR:
        return rep
    judged = {g.param: g.analytic for g in rep.gradients if g.analytic is not None}
    if set(judged) != set(derivation.check):
        return rep
    changing = differing(derivation, screened[0], judged)
    if not changing:
        return rep
    rep.gradients = []
    return error_report(rep, changing, time.perf_counter() - rep.duration_s)
