"""Exhaustive three-way checks of several points at the same sizes at once (as the search draws them).

The references for all the points come from a few stacked calls (reference/_stacked.py). A point is
passed here only when every entry of every checked gradient meets the bounds ``point._judge``
applies, computed the same way: |a − t| ≤ τ_ex and |t − d| ≤ K_FD·e + τ_ex, with the thresholds of
checks/verdict/thresholds.py. It must also be unremarkable: float64 gradients of the right shapes, finite
autograd, no switch within a finite-difference step, a forward that gave the same value four times
in NumPy and (to rounding) under vmap, nothing to warn about. Every other point — a failure, an error,
a warning, anything unusual — is checked again alone by ``point.evaluate``, and that report is
the one given. The grouped path thus decides clean passes only: it cannot change a verdict on a
wrong gradient or the text of any message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import PASS, GradientReport, Point, Report
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.point import analytic_noise, call_gradients, changed_in_place, check_inputs, copies, evaluate, inner_length
from verigrad.reference import U64, FDEstimate, ForwardError, forward_value
from verigrad.reference._stacked import Stack

#: The vmapped forward at an unperturbed point must reproduce the NumPy value to this many ulps of
#: |f| (as reference/_batched.py's probe), or to K_FD·ε_f where f is a cancelling sum (a layer's
#: Σ G ⊙ out): batched kernels sum in another order, which moves f by rounding (measured by ε_f)
#: and by nothing more.
VMAP_AGREEMENT_ULPS = 64


def _screen(derivation: Derivation, point: Point) -> tuple[dict[str, np.ndarray], float] | None:
    """(analytic gradients as float64 arrays, f in NumPy) when nothing about the point needs the single
    check's messages; else None."""
    if check_inputs(derivation, point) is not None:
        return None
    try:
        args = copies(point.params)
        f1 = forward_value(derivation, args, point.grad_output)
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
    grads = {}
    for name in derivation.check:
        a = np.asarray(analytic.get(name)) if name in analytic else None
        if a is None or a.dtype != np.float64 or a.shape != np.shape(point.params[name]) or not np.all(np.isfinite(a)):
            return None
        grads[name] = a
    return grads, f1


def _summaries(name: str, a: np.ndarray, t: np.ndarray, tau: np.ndarray, thr: np.ndarray, shape: tuple[int, ...]) -> list[GradientReport]:
    """What ``_judge`` reports for a gradient whose every entry passed, for each point of the stack
    (a, t, thr: one flattened row per point; tau: one bound per point)."""
    k, m = t.shape
    err = np.abs(a - t)
    worst = np.argmax(err, axis=1)
    rows = np.arange(k)
    max_err = err[rows, worst]
    max_ref = np.max(np.abs(t), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(max_ref > 0, max_err / max_ref, np.where(max_err == 0, 0.0, np.inf))
    columns = zip(
        np.stack(np.unravel_index(worst, shape), axis=1).tolist() if shape else [[]] * k,
        a[rows, worst].tolist(),
        t[rows, worst].tolist(),
        max_err.tolist(),
        rel.tolist(),
        tau.tolist(),
        np.max(thr, axis=1).tolist(),
        np.median(thr, axis=1).tolist(),
        strict=True,
    )
    out = []
    for i, (ix, a_w, t_w, e, r, tau_i, thr_max, thr_med) in enumerate(columns):
        g = GradientReport(param=name, status=PASS, entries=m, dtype="float64", worst_index=tuple(ix))
        g.analytic, g.reference, g.nondiff_mask = a[i].reshape(shape), t[i].reshape(shape), np.zeros(shape, dtype=bool)
        g.analytic_value, g.reference_value, g.max_abs_err, g.max_rel_err = a_w, t_w, e, r
        g.threshold = {"analytic_vs_autograd": tau_i, "finite_differences_max": thr_max, "finite_differences_median": thr_med}
        out.append(g)
    return out


def _stacked_verdicts(derivation: Derivation, points: Sequence[Point], screened, fd_seed: int) -> list[Report | None]:
    """A passing Report for each point that is clean by the stacked references, None for the others."""
    started = time.perf_counter()
    stack = Stack(
        derivation,
        [p.params for p in points],
        None if not derivation.is_layer else [p.grad_output for p in points],
    )
    rng = np.random.default_rng(fd_seed)
    auto, sigma = stack.autograd(rng, jitters=tol.AUTOGRAD_JITTERS, relative=tol.NOISE_JITTER)
    for i, ((grads, _), probes) in enumerate(zip(screened, stack.probes, strict=True)):
        scale = {n: float(np.max(np.abs(t[i][np.isfinite(t[i])]), initial=0.0)) for n, t in auto.items()}
        for name, sigma_a in analytic_noise(derivation, grads, probes, scale).items():  # float64 gradients: u_a = u
            sigma[name][i] += sigma_a

    def refine(name: str, est: FDEstimate) -> np.ndarray:
        t = auto[name]
        with np.errstate(invalid="ignore"):
            return ~np.isfinite(t) | ~(np.abs(est.value - t) <= tol.K_FD * est.error)

    est, noise, f0 = stack.finite_differences(list(derivation.check), refine, rng)
    k = len(points)
    f1 = np.array([f for _, f in screened])
    ok = np.abs(f0 - f1) <= np.maximum(VMAP_AGREEMENT_ULPS * 2 * U64 * np.abs(f1), tol.K_FD * noise)
    total_dims = inner_length(derivation, points[0].sizes)
    parts: dict[str, list[GradientReport]] = {}
    for name in derivation.check:
        t = auto[name].reshape(k, -1)
        a = np.stack([g[name] for g, _ in screened]).reshape(k, -1)
        fd = est[name]
        value, error, nd = fd.value.reshape(k, -1), fd.error.reshape(k, -1), fd.nondifferentiable.reshape(k, -1)
        max_ref = np.max(np.abs(t), axis=1, initial=0.0)
        tau = tol.exact_bound(np.max(sigma[name].reshape(k, -1), axis=1, initial=0.0), U64, total_dims, max_ref)
        thr = tol.K_FD * error + tau[:, None]
        with np.errstate(invalid="ignore"):
            good = np.isfinite(t) & ~nd & (np.abs(a - t) <= tau[:, None]) & (np.abs(t - value) <= thr)
        ok &= np.all(good, axis=1)
        parts[name] = _summaries(name, a, t, tau, thr, np.shape(points[0].params[name]))
    each = (time.perf_counter() - started) / k
    out: list[Report | None] = []
    for i, p in enumerate(points):
        if not ok[i]:
            out.append(None)
            continue
        rep = Report(name=derivation.name, status=PASS, shapes=dict(p.sizes), point_seed=p.seed, examples=1, points=1, mode="exhaustive")
        rep.warnings.extend(p.notes)
        rep.evaluations = int(stack.evaluations[i])
        rep.gradients = [per_point[i] for per_point in parts.values()]
        rep.duration_s = each
        out.append(rep)
    return out


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
    screened = {i: s for i, p in enumerate(points) if (s := _screen(derivation, p)) is not None}
    if len(screened) > 1:
        idx = list(screened)
        try:
            got = _stacked_verdicts(derivation, [points[i] for i in idx], [screened[i] for i in idx], fd_seed)
        except Exception:  # the stack could not run faithfully (see reference/_stacked.py): one at a time
            got = [None] * len(idx)
        for i, rep in zip(idx, got, strict=True):
            reports[i] = rep
    for rep, p in zip(reports, points, strict=True):
        yield rep if rep is not None else single(p)
