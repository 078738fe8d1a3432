"""The per-entry verdict: one parameter's gradient at k stacked points, three witnesses each.

Every array carries a leading point axis (a single point is a stack of one). For entry i of a point,
with a the hand-derived gradient, t autograd, d the finite difference and e its error estimate:

* τ_ex = C_NOISE·(u_a/u)·σ + C_SIZE·u_a·√L·max|ref|  (``exact_tolerance``; σ the rounding noise
  measured at the point, its maximum over the differentiable entries);
* a ≈ t when |a − t| ≤ τ_ex; t ≈ d and a ≈ d when within K_FD·e + τ_ex;
* the entry is ok when a ≈ t ≈ d; the analytic gradient is blamed when a ≉ t but t ≈ d (or, where
  t is not finite, when a ≉ d); the graph when a ≈ t but d differs from both; autograd when a ≈ d
  only; undetermined when no two witnesses agree. Entries whose finite-difference step crosses a
  switch, declared or found by the one-sided slopes (reference/_fd.py), are ok (reported
  nondifferentiable), whatever the witnesses say.

Finite differences see the function the user wrote. Away from a kink, on a forward that gave the same
value every time (checked before the references), autograd disagreeing with them beyond the error
model means torch's graph is not that function — a custom ``torch.autograd.Function`` with a wrong
backward, or a value taken out of the graph (``float()``, ``.item()``, ``.detach()``, a NumPy round
trip) — so an analytic gradient that agrees with autograd only has not been shown right: the graph
entries are judged against the finite differences (the reference there), and fail.

The gradient fails when some entry blames the analytic gradient or the graph, or is undetermined; a
suspect autograd graph under an analytic gradient that agrees with the function is a warning.
Thresholds and their reasons: checks/verdict/thresholds.py; their derivation: docs/tolerances.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verigrad.checks.report import FAIL, NOISE_NOT_NEEDED, PASS, Blame, GradientReport, Problem
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.calls import Unreadable
from verigrad.reference import FDEstimate

#: Entry verdicts as small integer codes (the blames of the result model, OK for none).
OK, ANALYTIC, GRAPH, AUTOGRAD, UNDETERMINED = range(5)
BLAMES = {ANALYTIC: Blame.ANALYTIC, GRAPH: Blame.GRAPH, AUTOGRAD: Blame.AUTOGRAD, UNDETERMINED: Blame.UNDETERMINED}
#: Entry verdicts that fail the gradient.
FAILING = (ANALYTIC, GRAPH, UNDETERMINED)


def precision_of(a: np.ndarray) -> float:
    """u_a: the unit roundoff the hand-derived gradient was computed in (float64's for integers)."""
    return tol.unit_roundoff(a.dtype) if a.dtype.kind == "f" else tol.U64


#: The smallest positive normal number of each floating dtype coarser than float64, by its unit roundoff.
_NORMAL_FLOOR = {tol.unit_roundoff(np.dtype(t)): float(np.finfo(t).tiny) for t in (np.float16, np.float32)}


def normal_floor(u_a: float) -> float:
    """The smallest normal number of the gradient's dtype (by its unit roundoff u_a), 0 for float64.

    Below it the dtype's spacing stops shrinking with |x| (its subnormals lie 2·u_a·tiny apart), so a
    correct float16 or float32 gradient of values that small is off by up to u_a·tiny, not u_a·|x|:
    τ_ex's size term takes max|ref| no smaller than this. float64 keeps its τ_ex (TINY already floors it).
    """
    return _NORMAL_FLOOR.get(u_a, 0.0) if u_a > tol.U64 else 0.0


def live_max(values: np.ndarray, differentiable: np.ndarray | None = None) -> np.ndarray:
    """Per point (leading axis), max |values| over the finite entries (and the differentiable ones, if given)."""
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(v) if differentiable is None else np.isfinite(v) & differentiable
    mag = np.abs(v) if keep.all() else np.where(keep, np.abs(v), 0.0)
    return np.max(mag.reshape(v.shape[0], -1), axis=1, initial=0.0)


def exact_tolerance(
    sigma: Any,
    u_a: float,
    total_dims: int,
    reference: np.ndarray,
    differentiable: np.ndarray | None = None,
    *,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """τ_ex per point of a stack: how far two exact gradients of these points may differ by rounding alone.

    ``sigma``: the rounding noise σ per entry (or one per point), of which the largest over the
    ``differentiable`` entries counts: a switch within the jitter of 0 flips, and the jump it causes
    at a kink entry is not rounding noise. ``reference``: the exact witness whose largest finite
    entry (``scale``, when the caller has it: ``live_max(reference)``) sets the size term, no smaller
    than ``normal_floor(u_a)``.
    """
    ref = np.asarray(reference)
    model, least = _bound_and_floor(sigma, u_a, total_dims, ref, differentiable, scale)
    return np.maximum(model, least)


def _bound_and_floor(sigma, u_a: float, total_dims: int, ref: np.ndarray, differentiable, scale) -> tuple[np.ndarray, np.ndarray]:
    """τ_ex of the error model, and its precision floor, per point (``exact_tolerance`` takes the larger)."""
    k = ref.shape[0]
    sig = np.asarray(sigma, dtype=np.float64)
    if sig.shape == ref.shape and differentiable is not None and not differentiable.all():
        sig = np.where(differentiable, sig, 0.0)
    sigma_live = np.max(sig.reshape(k, -1), axis=1, initial=0.0)
    size = live_max(ref) if scale is None else scale
    floor = normal_floor(u_a)
    size = np.maximum(size, floor) if floor else size
    return tol.exact_bound(sigma_live, u_a, total_dims, size), precision_floor(u_a, size)


def precision_floor(u_a: float, size: Any) -> Any:
    """The least τ_ex for gradients of largest entry ``size`` in precision u_a: a deviation of a few ulps of the
    gradient's scale is rounding, not a formula error (``PRECISION_FLOOR_ULPS``, docs/tolerances.md §4)."""
    return tol.PRECISION_FLOOR_ULPS * u_a * size


@dataclass
class Entries:
    """The per-entry judgement of one parameter at k points (leading axis k on every array)."""

    verdict: np.ndarray  # int codes OK, ANALYTIC, ...
    reference: np.ndarray  # autograd where finite and not a graph entry, else the finite difference
    finite_t: np.ndarray
    nondiff: np.ndarray
    kink_agrees: np.ndarray  # kink entries where analytic and autograd agree within τ_ex
    err: np.ndarray  # |a − ref| at differentiable entries (NaN as inf), 0 elsewhere
    tau: np.ndarray  # (k,)
    thr_fd: np.ndarray  # K_FD·e + τ_ex per entry
    scale: np.ndarray  # (k,): max |ref| over the finite entries
    model: np.ndarray  # (k,): τ_ex of the error model where the precision floor raised it, else inf
    u_a: float


def _verdicts(finite_t, nd, at, td, ad, beyond_noise) -> np.ndarray:
    verdict = np.full(at.shape, OK, dtype=np.int8)
    verdict[finite_t & at & ~td & ~ad & beyond_noise] = GRAPH
    verdict[finite_t & ~at & td] = ANALYTIC
    verdict[finite_t & ~at & ~td & ad] = AUTOGRAD
    verdict[finite_t & ~at & ~td & ~ad] = UNDETERMINED
    verdict[~finite_t & ~ad] = ANALYTIC
    verdict[nd] = OK
    return verdict


def _beyond_noise(auto: np.ndarray, d: np.ndarray, thr_fd: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Where autograd and the finite difference differ by more than the largest finite-difference threshold of the
    same gradient at the same point (over its differentiable entries): what a graph entry must show.

    An entry's own K_FD·e can fall far below the rounding its difference carries — ε_f is measured at jitters of a
    few ulps, and in a saturated tanh the rounding of tanh(h) ≈ ±1 does not move under them, so the spread of f
    reads 5e-19 where its terms round by 1e-16, and a Richardson gap can vanish by coincidence — while the other
    entries' measured gaps show the true level. A wrong graph (a custom backward, a value taken out of the graph)
    differs at O(1) of the entry, far above it; a correct tanh forward's differences at 7e-12 of 1e-10 noise are
    not a wrong graph (docs/tolerances.md §1)."""
    k = auto.shape[0]
    level = np.max(np.where(live, thr_fd, 0.0).reshape(k, -1), axis=1, initial=0.0).reshape(k, *([1] * (auto.ndim - 1)))
    with np.errstate(invalid="ignore"):
        return np.abs(auto - d) > level


def judge_entries(a: np.ndarray, auto: np.ndarray, fd: FDEstimate, sigma: Any, u_a: float, total_dims: int) -> Entries:
    """The verdict of every entry at every point; ``a`` in float64, ``fd`` stacked like ``auto``."""
    finite_t = np.isfinite(auto)
    nd = np.asarray(fd.nondifferentiable, dtype=bool)
    ref = np.where(finite_t, auto, fd.value)
    k = auto.shape[0]
    scale = live_max(ref)
    model, least = _bound_and_floor(sigma, u_a, total_dims, ref, ~nd, scale)
    tau = np.maximum(model, least)
    tau_b = tau.reshape(k, *([1] * (auto.ndim - 1)))
    thr_fd = tol.K_FD * fd.error + tau_b
    with np.errstate(invalid="ignore"):
        gap = np.abs(a - auto)
        at = finite_t & (gap <= tau_b)
        td = finite_t & (np.abs(auto - fd.value) <= thr_fd)
        verdict = _verdicts(finite_t, nd, at, td, np.abs(a - fd.value) <= thr_fd, _beyond_noise(auto, fd.value, thr_fd, finite_t & ~nd))
        ref = np.where(verdict == GRAPH, fd.value, ref)  # judged against the function there
        err = np.where(nd, 0.0, np.abs(a - ref))
        err = np.where(np.isnan(err), np.inf, err)
    return Entries(verdict, ref, finite_t, nd, nd & at, err, tau, thr_fd, scale, np.where(least > model, model, np.inf), u_a)


def _median(x: np.ndarray) -> float:
    """np.median of a 1-D array, to the bit (the middle value, or the mean of the two middle values),
    without its generic machinery: it runs for every parameter of every point."""
    if np.isnan(x).any():
        return float("nan")
    h = x.size // 2
    if x.size % 2:
        return float(np.partition(x, h)[h])
    p = np.partition(x, (h - 1, h))
    return float((p[h - 1] + p[h]) / 2)


def _indices(mask: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in ix) for ix in np.argwhere(mask)]


def _summary(g: GradientReport, a: np.ndarray, e: Entries, i: int) -> None:
    """Counts, thresholds and the worst entry of point ``i``."""
    nd, err, thr, verdict = e.nondiff[i], e.err[i], e.thr_fd[i], e.verdict[i]
    live = ~nd
    bad = np.isin(verdict, FAILING)
    g.mismatches = int(bad.sum())
    g.nondifferentiable = _indices(nd) if nd.any() else []
    lost = (~e.finite_t[i] | (verdict == GRAPH)) & live
    g.decided_by_fd = _indices(lost) if lost.any() else []
    any_live = bool(live.any())
    thr_live = thr[live] if not any_live or not live.all() else thr.reshape(-1)
    g.threshold = {
        "analytic_vs_autograd": float(e.tau[i]),
        "finite_differences_max": float(np.max(thr_live, initial=0.0)),
        "finite_differences_median": _median(thr_live) if any_live else 0.0,
    }
    if any_live:
        pool = np.where(bad, err, -1.0) if g.mismatches else np.where(live, err, -1.0)
        worst = np.unravel_index(int(np.argmax(pool)), pool.shape)
        g.worst_index = tuple(int(j) for j in worst)
        g.analytic_value, g.reference_value = float(a[worst]), float(e.reference[i][worst])
        g.max_abs_err = float(np.max(err, initial=0.0))  # 0 off the differentiable entries
        max_ref = float(e.scale[i])
        g.max_rel_err = g.max_abs_err / max_ref if max_ref > 0 else (0.0 if g.max_abs_err == 0 else float("inf"))


def _conclude(g: GradientReport, e: Entries, i: int) -> None:
    """Status, blame and warnings of point ``i`` from its entries' verdicts."""
    counts = np.bincount(e.verdict[i].reshape(-1), minlength=5)
    if counts[ANALYTIC]:
        g.status, g.blame = FAIL, BLAMES[ANALYTIC]
    elif counts[UNDETERMINED]:
        g.status, g.blame = FAIL, BLAMES[UNDETERMINED]
    elif counts[GRAPH]:
        n = int(counts[GRAPH])
        g.status, g.blame = FAIL, BLAMES[GRAPH]
        g.message = (
            f"the analytic gradient of {g.param} agrees with autograd, but finite differences of the forward disagree with both at"
            f" {n} of {g.entries} entries away from any kink: torch's graph is not the forward's function, and judged against"
            f" the function the gradient is wrong (max abs err {g.max_abs_err:.3g})"
        )
    elif counts[AUTOGRAD]:
        g.blame = BLAMES[AUTOGRAD]
        g.warnings.append(
            f"autograd disagrees with analytic and finite differences at {int(counts[AUTOGRAD])} entries: the torch forward's graph is the suspect"
        )
    lost = int((~e.finite_t[i] & ~e.nondiff[i]).sum())
    if lost:
        g.warnings.append(f"autograd returned non-finite values at {lost} entries although the forward is finite; decided by finite differences")
    _note_floor(g, e, i)
    off = e.nondiff[i] & e.finite_t[i] & ~e.kink_agrees[i]
    if off.any():
        g.warnings.append(f"at {int(off.sum())} kink entries the analytic subgradient differs from autograd's convention (see the glossary)")


def _note_floor(g: GradientReport, e: Entries, i: int) -> None:
    _floor_note(g, float(e.model[i]), float(e.scale[i]), e.u_a)


def _floor_note(g: GradientReport, model: float, scale: float, u_a: float) -> None:
    """A passing gradient whose largest deviation from the reference is above the error model's τ_ex (``model``;
    inf where the precision floor did not raise τ_ex) says that it passed within the precision floor, and how far it
    is off in ulps of its scale."""
    if g.status != PASS or g.decided_by_fd or g.max_abs_err is None or not g.max_abs_err > model:
        return  # (no max_abs_err: every entry is at a kink, none was compared)
    ulps = g.max_abs_err / (u_a * scale)
    p = next((p for p in range(3, 17) if f"{g.max_abs_err:.{p}g}" != f"{model:.{p}g}"), 17)  # digits that tell them apart
    g.warnings.append(
        f"within the precision floor: its largest deviation, {g.max_abs_err:.{p}g} ({ulps:.1f} u of max|reference|), is above the error"
        f" model's {model:.{p}g} but within {tol.PRECISION_FLOOR_ULPS:g} u of the gradient's scale: rounding, not a formula error"
    )


def judge_stack(
    param: str, a: np.ndarray, auto: np.ndarray, fd: FDEstimate, sigma: Any, total_dims: int, u_a: float = tol.U64
) -> list[GradientReport]:
    """The verdict on ``param`` at each of k stacked points: ``a`` (the hand-derived gradient, already
    admitted and in float64), ``auto``, ``fd`` and ``sigma`` with a leading point axis; ``judge_stacks`` of one."""
    return judge_stacks([(param, a, auto, fd, sigma, u_a)], total_dims)[0]


def _alone(
    param: str, a: np.ndarray, auto: np.ndarray, fd: FDEstimate, sigma: Any, u_a: float, total_dims: int, rows: Sequence[int] | None = None
) -> list[GradientReport]:
    """The verdict on a parameter with some entry not plain (not finite, at a kink, or not ok) at some point:
    entry by entry, at the points ``rows`` (default: every point)."""
    e = judge_entries(a, auto, fd, sigma, u_a, total_dims)
    out = []
    for i in range(auto.shape[0]) if rows is None else rows:
        g = GradientReport(param=param, status=PASS, entries=int(auto[i].size), dtype="float64")
        g.analytic, g.reference, g.nondiff_mask = a[i], e.reference[i], fd.nondifferentiable[i]
        _summary(g, a[i], e, i)
        _conclude(g, e, i)
        out.append(g)
    return out


def _sorted_within(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``values`` (k, M) sorted within each segment [starts[j], starts[j] + sizes[j]) of every row."""
    segment = np.repeat(np.arange(len(sizes)), sizes)
    order = np.lexsort((values, np.broadcast_to(segment, values.shape)), axis=1)
    return np.take_along_axis(values, order, axis=1)


def judge_stacks(params: Sequence[tuple[str, np.ndarray, np.ndarray, FDEstimate, Any, float]], total_dims: int) -> list[list[GradientReport]]:
    """The verdict on several parameters at the same k points (``params``: (name, a, auto, fd, sigma, u_a) each,
    ``a`` admitted and in float64, every array with the leading point axis), the entries of all of them in one
    vectorised pass: τ_ex per parameter and point, every entry's tests, and at a point where every entry of a
    parameter is plain (finite, differentiable and ok: the common case) its report's numbers by reductions along each
    parameter's segment, the same numbers ``judge_entries`` and the median of its thresholds give. A parameter at
    any other point is judged entry by entry there (``_alone``)."""
    k = params[0][2].shape[0]
    m = np.array([t[0].size for _, _, t, _, _, _ in params], dtype=np.int64)
    out: list[list[GradientReport] | None] = [None] * len(params)
    for i in np.flatnonzero(m == 0):  # nothing to compare: every point passes, with its τ_ex and no entry
        name, a_i, t_i, fd_i, sigma_i, u_a = params[i]
        e = judge_entries(a_i, t_i, fd_i, sigma_i, u_a, total_dims)
        out[i] = [GradientReport(param=name, status=PASS, entries=0, dtype="float64") for _ in range(k)]
        for r, g in enumerate(out[i]):
            g.analytic, g.reference, g.nondiff_mask = a_i[r], t_i[r], fd_i.nondifferentiable[r]
            g.threshold = {"analytic_vs_autograd": float(e.tau[r]), "finite_differences_max": 0.0, "finite_differences_median": 0.0}
    fused = np.flatnonzero(m > 0)
    if len(fused):
        _fused(params, fused, m[fused], total_dims, out)
    for i in range(len(params)):
        got = out[i] = out[i] or [None] * k
        rows = [r for r, g in enumerate(got) if g is None]
        for r, g in zip(rows, _alone(*params[i][:5], params[i][5], total_dims, rows) if rows else [], strict=True):
            got[r] = g
    return out


def _fused(params, fused: np.ndarray, m: np.ndarray, total_dims: int, out: list) -> None:
    """``judge_stacks`` of the parameters ``fused`` (m entries each), written into ``out`` where they are plain."""
    k = params[0][2].shape[0]
    flat = lambda get: np.concatenate([np.asarray(get(params[i]), dtype=np.float64).reshape(k, -1) for i in fused], axis=1)
    a, auto, d, err = flat(lambda p: p[1]), flat(lambda p: p[2]), flat(lambda p: p[3].value), flat(lambda p: p[3].error)
    nd = np.concatenate([np.asarray(params[i][3].nondifferentiable, dtype=bool).reshape(k, -1) for i in fused], axis=1)
    starts = np.concatenate([[0], np.cumsum(m[:-1])])
    u_a = np.array([params[i][5] for i in fused])
    finite = np.isfinite(auto)
    sigmas = [np.asarray(params[i][4], dtype=np.float64).reshape(k, -1) for i in fused]
    if all(s.shape[1] == 1 for s in sigmas):  # one σ per point (0 until a verdict needs it): np.max's own result, to the bit
        sigma_live = np.maximum(0.0, np.concatenate(sigmas, axis=1))
    else:
        sigma_live = np.stack([np.max(s, axis=1, initial=0.0) for s in sigmas], axis=1)
    with np.errstate(invalid="ignore"):
        scale = np.maximum.reduceat(np.where(finite, np.abs(auto), 0.0), starts, axis=1)
        size = np.maximum(scale, [normal_floor(u) for u in u_a])
        model, least = tol.exact_bound(sigma_live, u_a, total_dims, size), precision_floor(u_a, size)
        tau = np.maximum(model, least)
        tau_full = np.repeat(tau, m, axis=1)
        thr = tol.K_FD * err + tau_full
        gap = np.abs(a - auto)
        ok = finite & ~nd & (gap <= tau_full) & (np.abs(auto - d) <= thr)
    plain = np.logical_and.reduceat(ok, starts, axis=1)  # (k, parameters): every entry ok at the point
    if not plain.any():
        return
    # The report's numbers of every parameter at once; used for the plain ones.
    below = np.where(least > model, model, np.inf)
    max_err, thr_max = np.maximum.reduceat(gap, starts, axis=1), np.maximum.reduceat(thr, starts, axis=1)
    columns = np.arange(a.shape[1])
    last = a.shape[1] - 1  # (where a segment has no maximum, NaN in a parameter that is not plain: unused)
    first = np.minimum.reduceat(np.where(gap == np.repeat(max_err, m, axis=1), columns, last), starts, axis=1)  # argmax
    ordered = _sorted_within(thr, starts, m)
    h = starts + m // 2
    median = np.where(m % 2 == 1, ordered[:, h], (ordered[:, np.maximum(h - 1, 0)] + ordered[:, h]) / 2)
    rows = np.arange(k)[:, None]
    a_worst, t_worst = a[rows, first], auto[rows, first]
    numbers = [x.T.tolist() for x in (tau, thr_max, median, max_err, scale, below, a_worst, t_worst)]
    for j, i in enumerate(fused):
        at_plain = plain[:, j].tolist()
        if not any(at_plain):
            continue
        name, a_i, t_i, fd_i, _, u = params[i]
        shape, entries = t_i.shape[1:], int(m[j])
        worst = zip(*(w.tolist() for w in np.unravel_index(first[:, j] - starts[j], shape)), strict=True) if shape else [()] * k
        report: list[GradientReport | None] = []
        each = zip(range(k), zip(*(x[j] for x in numbers), strict=True), worst, strict=True)
        for r, (t_r, thr_r, med_r, err_r, scale_r, below_r, a_r, t_r_worst), where in each:
            if not at_plain[r]:  # judged entry by entry (``_alone``)
                report.append(None)
                continue
            g = GradientReport(param=name, status=PASS, entries=entries, dtype="float64")
            g.analytic, g.reference, g.nondiff_mask = a_i[r], t_i[r], fd_i.nondifferentiable[r]
            g.threshold = {"analytic_vs_autograd": t_r, "finite_differences_max": thr_r, "finite_differences_median": med_r}
            g.worst_index = tuple(where)
            g.analytic_value, g.reference_value = a_r, t_r_worst
            g.max_abs_err = err_r
            g.max_rel_err = err_r / scale_r if scale_r > 0 else (0.0 if err_r == 0 else float("inf"))
            _floor_note(g, below_r, scale_r, u)
            report.append(g)
        out[i] = report


def admit(param: str, analytic: Any, shape: tuple[int, ...]) -> tuple[GradientReport | None, list[str]]:
    """Whether the returned gradient can be compared entry by entry: (a failing report if not, warnings)."""
    fail = lambda message, problem: GradientReport(param=param, status=FAIL, blame=Blame.ANALYTIC, message=message, problem=problem)
    if analytic is None:
        return fail(f"gradients returned no entry for {param}", Problem.MISSING), []
    if isinstance(analytic, Unreadable):
        return fail(f"gradient of {param} cannot be read as an array: {analytic.reason}", Problem.DTYPE), []
    a = np.asarray(analytic)
    if a.dtype == object and a.size:  # a generator, the objects of a user's own autodiff (they never leave the worker)
        held = type(a.flat[0]).__name__
        return fail(f"gradient of {param} returned objects of type {held} (dtype object); expected a real floating-point array", Problem.DTYPE), []
    integer = a.dtype.kind != "f" and np.issubdtype(a.dtype, np.integer)  # complex, bool and object are neither floating nor integer
    if not (a.dtype.kind == "f" or integer):
        return fail(f"gradient of {param} has dtype {a.dtype}; expected a real floating-point array", Problem.DTYPE), []
    if a.shape != shape:
        return fail(f"gradient of {param} has shape {a.shape}, but {param} has shape {shape}", Problem.SHAPE), []
    warnings = [f"gradient of {param} has integer dtype {a.dtype}; judged as float64"] if integer else []
    u_a = precision_of(a)
    if u_a > tol.U64:
        warnings.append(f"gradient of {param} returned in {a.dtype}: judged with that precision's rounding (u = {u_a:.1e})")
    return None, warnings


def judge_point(param: str, analytic: Any, auto: np.ndarray, fd: FDEstimate, sigma: Any, total_dims: int) -> GradientReport:
    """The verdict on ``param`` at one point: ``judge_at_point`` of one parameter."""
    return judge_at_point([(param, analytic, auto, fd, sigma)], total_dims)[0]


def judge_at_point(params: Sequence[tuple[str, Any, np.ndarray, FDEstimate, Any]], total_dims: int) -> list[GradientReport]:
    """The verdict on each parameter at one point (``params``: (name, analytic, auto, fd, sigma) each): ``admit``,
    then ``judge_stacks`` of the float64 gradients at a stack of one, ``judge_stack`` of those in another precision."""
    out: list[GradientReport | None] = [None] * len(params)
    fused, raws = [], {}
    for i, (param, analytic, auto, fd, sigma) in enumerate(params):
        refused, warnings = admit(param, analytic, auto.shape)
        if refused is not None:
            refused.entries = int(auto.size)
            refused.reference = np.where(np.isfinite(auto), auto, fd.value)
            refused.nondiff_mask = fd.nondifferentiable
            if refused.problem is not Problem.MISSING and not isinstance(analytic, Unreadable):
                refused.analytic, refused.dtype = np.asarray(analytic), str(np.asarray(analytic).dtype)
            out[i] = refused
            continue
        raw = np.asarray(analytic)
        raws[i] = raw, warnings
        one = FDEstimate(*(np.asarray(v)[None] for v in (fd.value, fd.error, fd.step, fd.nondifferentiable, fd.refined)))
        fused.append((i, (param, raw.astype(np.float64)[None], auto[None], one, np.asarray(sigma, dtype=np.float64)[None], precision_of(raw))))
    if fused:
        for (i, _), got in zip(fused, judge_stacks([p for _, p in fused], total_dims), strict=True):
            out[i] = got[0]
    for i, (raw, warnings) in raws.items():
        g = out[i]
        g.analytic, g.dtype, g.nondiff_mask = raw, _dtype_text(raw.dtype), params[i][3].nondifferentiable
        g.warnings[:0] = warnings
        explain_non_finite(g)
    return out


@functools.lru_cache(maxsize=32)
def _dtype_text(dtype: np.dtype) -> str:
    return str(dtype)


def explain_non_finite(g: GradientReport) -> None:
    """A failing gradient with NaN/inf where the forward is finite says so in its message."""
    a = g.analytic
    if g.status != FAIL or g.message or a is None or a.dtype == object or not np.issubdtype(a.dtype, np.number):
        return
    bad = ~np.isfinite(a)
    if bad.any():
        g.message = f"gradient of {g.param} contains non-finite values (NaN/inf) at {int(bad.sum())} of {a.size} entries"
        g.problem = Problem.NON_FINITE


def clean(g: GradientReport) -> bool:
    """A passing gradient with nothing to say: no blame, no warning, no kink, nothing decided by finite
    differences alone. Judged with the rounding noise σ = 0, it is judged the same with any σ: τ_ex only grows
    with σ, and so does the error model's bound the precision-floor warning compares with."""
    return g.status == PASS and g.blame is None and not g.warnings and not g.nondifferentiable and not g.decided_by_fd


def mark_unmeasured(grads: list[GradientReport], measured: Callable[[], list[GradientReport]]) -> None:
    """``grads``, judged clean with σ = 0 at one point, say that σ was not needed, and each can give its verdict
    with σ measured (``GradientReport.remeasure``): ``measured()`` judges them all again, once, when first asked."""
    again = functools.cache(measured)
    for g in grads:
        g.sigma = NOISE_NOT_NEEDED
        g.remeasure = lambda param=g.param: next((h for h in again() if h.param == param), None)


def judged(g: GradientReport) -> bool:
    """Whether the verdict on ``g`` at its point says anything about the hand-derived values: it did not
    pass, or some finite entry of the reference exceeds τ_ex, so that an analytic value wrong by that
    entry's size would have been seen. Where the reference is 0 at every entry, or underflows below
    τ_ex's floor, any gradient within τ_ex of 0 passes: a search that draws only such points for a
    parameter has judged nothing of its gradient (an error of the search, not a pass)."""
    if g.status != PASS:
        return True
    if g.reference is None:
        return False
    ref = np.abs(np.asarray(g.reference, dtype=np.float64))
    tau = float((g.threshold or {}).get("analytic_vs_autograd", 0.0))
    top = float(ref.max(initial=0.0))
    if math.isfinite(top):  # every entry finite (the common case): the largest decides
        return top > tau
    return bool((np.isfinite(ref) & (ref > tau)).any())


def demand(g: GradientReport) -> float:
    """How close a passing ``g`` came to failing at its point: its largest error over the threshold its
    analytic values were judged against (τ_ex; the differences' own under finite differences alone). The
    search shows each passing gradient at the judged point where this is largest."""
    err, tau = g.max_abs_err or 0.0, float((g.threshold or {}).get("analytic_vs_autograd", 0.0))
    if tau > 0:
        return err / tau
    return 0.0 if err == 0 else float("inf")


def refine_where_autograd_disagrees(auto: Mapping[str, np.ndarray]) -> Callable[[str, FDEstimate], np.ndarray]:
    """The entries whose finite difference at step h does not already confirm autograd within K_FD·e
    (or where autograd is not finite): those get steps h/2 and h/4 (docs/tolerances.md §3)."""

    def refine(name: str, est: FDEstimate) -> np.ndarray:
        t = auto[name]
        with np.errstate(invalid="ignore"):
            return ~np.isfinite(t) | ~(np.abs(est.value - t) <= tol.K_FD * est.error)

    return refine
