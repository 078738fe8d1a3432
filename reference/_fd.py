"""Witness 3: central finite differences with a per-entry error estimate.

Error model (derivation in docs/tolerances.md):

* step  h_i = H0 · s_i, with s_i = max(|x_i|, rms(x)) the entry's scale and H0 = u^(1/3), the step that
  balances O(h²) truncation against O(u/h) rounding for central differences;
* rounding: every evaluation of f carries an absolute error of about ε_f, measured by evaluating f
  at points jittered by a few ulps (and at least 4·u·|f|), and, for a forward finite differences alone
  witness, along a line at the steps' own scale too (``line_noise``); the central difference then carries at
  most ε_f / h_i;
* truncation: where it matters (``refine``), f is also evaluated at h/2 and h/4; the Richardson
  extrapolations R1 = (4D(h/2) − D(h))/3 and R2 = (4D(h/4) − D(h/2))/3 give the estimate R2 and its
  error |R2 − R1| + 6 ε_f/h_i;
* kinks: an entry is not differentiable at the point when a declared switch changes sign within
  ±h_i, or when the gap between the one-sided slopes does not shrink with the step (at h/4 it is
  still more than half its value at h, and above rounding). Convergence of the central differences
  is not required: at a kink exactly at x they converge, to the mean of the two slopes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from verigrad.analytic import Derivation

from ._batched import BatchedObjective
from .constants import (
    CONVERGENCE_NOISE,
    CONVERGENCE_RATIO,
    H0,
    JITTER_POINTS,
    JITTER_ULPS,
    KINK_NOISE,
    KINK_RATIO,
    LADDER_DOWN,
    LADDER_UP,
    LINE_ORDER,
    LINE_POINTS,
    NOISE_FLOOR_ULPS,
    RICHARDSON_ROUNDING,
    SHARPEN_ABOVE,
    SIGMA_LINES,
    STEP_EXPONENT,
    TINY,
    U64,
    WIDE_STEP_EXPONENT,
)


@dataclass
class FDEstimate:
    """Finite-difference gradient of one parameter, with its error estimate per entry."""

    value: np.ndarray  # best estimate of ∂f/∂param
    error: np.ndarray  # estimated absolute error of ``value`` (rounding, plus truncation where refined)
    step: np.ndarray  # the step h_i used per entry
    nondifferentiable: np.ndarray  # bool: the forward is not differentiable within ±h_i
    refined: np.ndarray  # bool: estimated at h, h/2 and h/4 with Richardson extrapolation


@dataclass
class FDResult:
    gradients: dict[str, FDEstimate]
    noise: float  # ε_f, the forward's absolute rounding noise at the point
    f0: float
    evaluations: int
    vectorized: bool


Refine = Callable[[str, FDEstimate], np.ndarray]


def _rms(x: np.ndarray, axis: int) -> np.ndarray:
    """Root mean square along ``axis``; where x·x overflows (|x| near 1e308) taken as m·rms(x/m), m = max|x|, so
    the harness's own arithmetic never makes the step infinite. Elsewhere the plain formula, bit for bit."""
    with np.errstate(over="ignore"):
        rms = np.sqrt(np.mean(x * x, axis=axis))
    big = ~np.isfinite(rms) & np.isfinite(x).all(axis=axis)
    if big.any():
        m = np.abs(x[big]).max(axis=axis, keepdims=True)
        rms[big] = (m * np.sqrt(np.mean((x[big] / m) ** 2, axis=axis, keepdims=True))).reshape(-1)
    return rms


def steps_for(x: np.ndarray, *, stacked: bool = False, base: float = H0, floor: float = 0.0) -> np.ndarray:
    """Per-entry step h_i = base · max(|x_i|, rms(x)), never zero (``base`` H0 unless a wider step or another
    precision calls for another; ``floor``: a least scale, where the caller has one).

    ``stacked``: x holds one parameter of several points along its first axis; rms is taken per point.
    """
    x = np.asarray(x, dtype=np.float64)
    if stacked:
        flat = x.reshape(len(x), -1)
        rms = _rms(flat, axis=1).reshape(-1, *([1] * (x.ndim - 1))) if flat.size else np.zeros(len(x))
    else:
        rms = float(_rms(x.reshape(1, -1), axis=1)[0]) if x.size else 0.0
    scale = np.maximum(np.maximum(np.abs(x), rms), floor)
    return base * np.where(scale > 0, scale, 1.0)


def stacked_steps(x: np.ndarray, columns: Sequence[tuple[int, int]]) -> np.ndarray:
    """``steps_for(x[:, a:b], stacked=True)`` of the columns (a, b) of each parameter of the (k, Σm) array ``x``, side by
    side, bit for bit: rms per point and parameter (the same reduction, over the same contiguous rows), then one pass
    of the elementwise steps over every column. Where some rms is not finite or a parameter is empty, each by
    ``steps_for`` (its overflow-safe rms)."""
    with np.errstate(over="ignore"):
        square = x * x
    rms = np.empty((len(x), len(columns)))
    for j, (a, b) in enumerate(columns):
        if a == b:
            rms = None
            break
        np.add.reduce(square[:, a:b], axis=1, out=rms[:, j])
    if rms is not None:
        rms = np.sqrt(rms / np.array([b - a for a, b in columns], dtype=np.float64))
    if rms is None or not np.isfinite(rms).all():
        return np.concatenate([steps_for(x[:, a:b], stacked=True) for a, b in columns], axis=1)
    spread = np.repeat(rms, [b - a for a, b in columns], axis=1)
    scale = np.maximum(np.abs(x), spread)  # both ≥ 0 (or NaN, which stays): no floor to take
    return H0 * np.where(scale > 0, scale, 1.0)


def forward_noise(evaluator: BatchedObjective, rng: np.random.Generator, *, batched: bool = False, unit: float = U64, line: bool = False) -> float:
    """ε_f: the spread of f over JITTER_POINTS points jittered by a few ulps, by the engine the
    differences use (``batched``: vmapped calls; else NumPy), floored at NOISE_FLOOR_ULPS·u·|f|; ulps and u
    of the precision the forward computes in (``unit``: float64's unless it computes in a coarser one).
    ``line``: at least the rounding seen at the scale of the differences' steps as well (``line_noise``)."""
    jit, f0 = evaluator.jittered(JITTER_POINTS, JITTER_ULPS * unit * 2, rng, batched=batched)
    noise = float(noise_from_jitter(jit[None], np.array([f0]), unit)[0])
    return max(noise, line_noise(evaluator, rng, batched=batched, unit=unit)) if line else noise


def line_noise(evaluator: BatchedObjective, rng: np.random.Generator, *, batched: bool = False, unit: float = U64) -> float:
    """The rounding of f at the scale of the smallest step the differences take (h/4), where a jitter of a few ulps
    may not reach it (an intermediate quantized far more coarsely than the inputs: 1 − σ(z) for σ(z) near 1 moves by
    whole ulps of 1 only when z moves by many ulps of z). f at LINE_POINTS points x + j·s·v, j = 0, 1, …, along a
    random direction (|v_i| ≤ 1, s_i = u^(1/3)/4 of the entry's scale): the LINE_ORDER-th differences of the table
    remove the smooth part (s^k·f^(k), ≈ 1e-18 relative) and leave Σ_j ±C(k, j)·e_j of the roundings e_j, whose
    spread is √C(2k, k) times theirs; ε = max |Δᵏf| / √C(2k, k) (docs/tolerances.md §2)."""
    along = line_points(evaluator.params, None, rng, both=False, lines=1, unit=unit)[0]
    f, f0 = evaluator.at_points([{n: v[j] for n, v in along.items()} for j in range(LINE_POINTS - 1)], batched=batched)
    return float(noise_from_line(np.concatenate([[f0], f])[None])[0])


def line_steps(x: np.ndarray, rng: np.random.Generator, *, stacked: bool = False, unit: float = U64) -> np.ndarray:
    """The line's step s∘v of every entry of ``x``: s_i = u^(1/3)/4 of the entry's scale (``steps_for``; ``stacked``:
    per point along the first axis), v_i uniform in ±1."""
    return steps_for(x, stacked=stacked, base=unit**STEP_EXPONENT / 4) * rng.uniform(-1.0, 1.0, np.shape(x))


def line_points(
    params: Mapping[str, np.ndarray],
    grad_output: np.ndarray | None,
    rng: np.random.Generator,
    *,
    stacked: bool = False,
    both: bool = True,
    lines: int = SIGMA_LINES,
    unit: float = U64,
):
    """(params, grad_output) along ``lines`` random lines through the point (``line_steps`` each; a layer's grad_output,
    an input of its objective, moves along them too): per line, x + j·s∘v at j = 1 … LINE_POINTS − 1, then (``both``)
    at j = −1 … −(LINE_POINTS − 1). Each a stack of those points along a new axis after the point's (``stacked``: the
    first axis holds the points, each with lines of its own). The defaults: σ's lines (docs/tolerances.md §4); one
    half of one line: ε_f's (``line_noise``)."""
    half = np.arange(1, LINE_POINTS, dtype=np.float64)
    j = np.concatenate([half, -half]) if both else half
    given = dict(params) if grad_output is None else {**params, None: grad_output}
    arrays = {n: np.asarray(v, dtype=np.float64) for n, v in given.items()}
    moved = {n: [] for n in arrays}
    for _ in range(lines):
        for n, v in arrays.items():
            step = line_steps(v, rng, stacked=stacked, unit=unit)
            lead, rest = (v.shape[:1], v.shape[1:]) if stacked else ((), v.shape)
            ones = (1,) * len(rest)
            moved[n].append(v.reshape(*lead, 1, *rest) + j.reshape(*([1] * len(lead)), -1, *ones) * step.reshape(*lead, 1, *rest))
    out = {n: np.concatenate(parts, axis=1 if stacked else 0) for n, parts in moved.items()}
    g = out.pop(None, None)
    return out, g


def noise_from_line(table: np.ndarray) -> np.ndarray:
    """The rounding of the values along a line, per row of ``table`` (its LINE_POINTS values at x + j·s∘v along the last
    axis, any leading axes): max |Δᵏ| / √C(2k, k) of the order-k differences (k = LINE_ORDER), 0 where one is not
    finite (a value not finite near the point: the jitter's ε_f, inf there, already says so)."""
    diffs = np.diff(table, n=LINE_ORDER, axis=-1)
    with np.errstate(invalid="ignore"):
        spread = np.max(np.abs(diffs), axis=-1) / math.sqrt(math.comb(2 * LINE_ORDER, LINE_ORDER))
    return np.where(np.all(np.isfinite(diffs), axis=-1), spread, 0.0)


def noise_from_jitter(jit: np.ndarray, f0: np.ndarray, unit: float = U64) -> np.ndarray:
    """ε_f per point from f at its jittered copies (one row per point) and at the point itself:
    the largest spread (inf if any is not finite), never below NOISE_FLOOR_ULPS·u·|f| (u: ``unit``)."""
    with np.errstate(invalid="ignore"):  # inf − inf
        deviation = jit - f0[:, None]
    spread = np.where(np.isfinite(jit).all(axis=1), np.maximum.reduce(np.abs(deviation), axis=1), np.inf)
    return np.maximum(np.maximum(spread, NOISE_FLOOR_ULPS * unit * np.abs(f0)), TINY)


def differences(ev: BatchedObjective, name: str, flat: np.ndarray, x: np.ndarray, h: np.ndarray):
    """Central differences of ``name`` at flat entries ``flat`` (values ``x``) with steps ``h``, divided by
    the steps as represented: (D(h), f(x + h), f(x − h), whether a declared switch flipped)."""
    xp, xm = x + h, x - h
    f, flipped = ev.at_entries(name, np.concatenate([flat, flat]), np.concatenate([xp, xm]))
    n = len(flat)
    fp, fm = f[:n], f[n:]
    return (fp - fm) / (xp - xm), fp, fm, flipped[:n] | flipped[n:]


def _stage_one(ev: BatchedObjective, names: Sequence[str], base: float = H0, floor: float = 0.0) -> dict[str, tuple]:
    """Central differences at step h (relative ``base``, scale at least ``floor``) for every entry of every parameter in
    ``names`` (batched together)."""
    plan = {}
    for name in names:
        x = ev.params[name].reshape(-1)
        h = steps_for(x, base=base, floor=floor)
        plan[name] = (x, h, x + h, x - h)
    flat = {name: np.arange(ev.params[name].size) for name in names}
    results = ev.at_entries_many(
        [(name, np.concatenate([flat[name], flat[name]]), np.concatenate([xp, xm])) for name, (_, _, xp, xm) in plan.items()]
    )
    out = {}
    for (name, (x, h, xp, xm)), (f, flipped) in zip(plan.items(), results, strict=True):
        n = x.size
        fp, fm = f[:n], f[n:]
        out[name] = (x, h, (fp - fm) / (xp - xm), fp, fm, flipped[:n] | flipped[n:])
    return out


def estimate(ev: BatchedObjective, name: str, noise: float, refine: Refine | None, stage_one: tuple | None = None) -> FDEstimate:
    """The FDEstimate of ``name``: D(h) everywhere, refined where ``refine`` says (everywhere by default)."""
    x, h, d1, fp, fm, flipped = stage_one or _stage_one(ev, [name])[name]
    rho = noise / h  # rounding error bound of a central difference at step h
    shape = ev.params[name].shape
    est = FDEstimate(
        value=d1.reshape(shape),
        error=rho.reshape(shape),
        step=h.reshape(shape),
        nondifferentiable=flipped.reshape(shape),
        refined=np.zeros(shape, dtype=bool),
    )
    mask = np.ones(x.size, dtype=bool) if refine is None else np.asarray(refine(name, est), dtype=bool).reshape(-1)
    idx = np.flatnonzero(mask & ~flipped)
    if idx.size:
        refine_entries(ev, name, noise, est, idx, x, h, d1, fp, fm)
    return est


def refine_entries(ev: BatchedObjective, name: str, noise: float, est: FDEstimate, idx, x, h, d1, fp, fm) -> None:
    """Steps h/2 and h/4 at flat entries ``idx`` of ``name``, Richardson and the kink test (``richardson``),
    written into ``est``; x, h, d1, fp, fm: flat values, steps, D(h) and f(x ± h) of every entry."""
    xi, hi = x[idx], h[idx]
    d2, _, _, fl2 = differences(ev, name, idx, xi, hi / 2)
    d3, fp3, fm3, fl3 = differences(ev, name, idx, xi, hi / 4)
    value, error, nondiff = richardson(d1[idx], d2, d3, fp[idx], fm[idx], fp3, fm3, ev.f0, hi, noise / hi)
    flat_view = (
        est.value.reshape(-1),
        est.error.reshape(-1),
        est.nondifferentiable.reshape(-1),
        est.refined.reshape(-1),
    )
    val, err, nd, refined = flat_view
    val[idx] = value
    err[idx] = error
    nd[idx] |= nondiff | fl2 | fl3
    refined[idx] = True


def richardson(d1, d2, d3, fp, fm, fp3, fm3, f0, h, rho) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, its error, kink found) per entry from central differences d1, d2, d3 at steps h, h/2, h/4.

    fp, fm: f(x ± h); fp3, fm3: f(x ± h/4); f0: f(x); rho: ε_f / h. Arrays of one shape (or broadcastable).
    """
    r1 = (4 * d2 - d1) / 3
    r2 = (4 * d3 - d2) / 3
    error = np.abs(r2 - r1) + RICHARDSON_ROUNDING * rho
    # Convergence at the O(h²) rate: D(h/2) − D(h/4) ≈ (D(h) − D(h/2)) / 4 up to rounding noise.
    converged = np.abs(d2 - d3) <= CONVERGENCE_RATIO * np.abs(d1 - d2) + CONVERGENCE_NOISE * rho
    # One-sided slopes. J(s) = |f(x+s) + f(x−s) − 2 f(x)| / s is the gap between the right and left
    # secant slopes: J(s) ≈ |f''| s where f is smooth, so J(h/4) ≈ J(h)/4; across a kink at distance
    # δ < h/7 it is |b − a| (1 − δ/s), so J(h/4) > J(h)/2. The test stands on its own: at a kink
    # exactly at x (δ ≈ 0) the central differences *do* converge, to the mean of the two slopes, so
    # convergence cannot be required. Rounding puts at most 4 ε_f / (h/4) = 16 ρ into J(h/4); the
    # floor 32 ρ leaves a factor 2 for ε_f being measured on a few jittered points only.
    jump_h = np.abs(fp + fm - 2 * f0) / h
    jump_q = np.abs(fp3 + fm3 - 2 * f0) / (h / 4)
    kinked = (jump_q > KINK_RATIO * jump_h) & (jump_q > KINK_NOISE * rho)
    value = np.where(converged, r2, d3)
    err = np.where(converged, error, np.abs(d2 - d3) + RICHARDSON_ROUNDING * rho)
    return value, err, kinked


def finite_differences(
    derivation: Derivation,
    params: Mapping[str, np.ndarray],
    grad_output: np.ndarray | None = None,
    *,
    check: Sequence[str] | None = None,
    refine: Refine | None = None,
    seed: int = 0,
    evaluator: BatchedObjective | None = None,
    progress: Callable[[int, int], None] | None = None,
    unit: float = U64,
    wide: bool = False,
    line: bool = False,
) -> FDResult:
    """Central-difference estimate of ∂f/∂param for every entry of every checked parameter.

    ``refine(name, estimate)`` selects the entries that also get steps h/2 and h/4 (Richardson
    extrapolation, truncation estimate, convergence test); by default every entry does. A caller
    that already holds an exact reference refines only the entries that disagree with it at h.
    ``progress(done, planned)`` hears of every batched call (planned: the two evaluations per entry).
    ``unit``: the unit roundoff of the precision the forward computes in; the step is u^(1/3) of the scale
    and ε_f is measured and floored in that precision. ``wide``: every entry is estimated from the wide steps
    H first (H/2 and H/4 where ``refine`` says), and from the usual ones only where that is not sharper (``usual_where_needed``).
    ``line`` (always where ``wide``): ε_f at least the rounding along a line at the steps' scale too (``line_noise``)."""
    ev = evaluator or BatchedObjective(derivation, params, grad_output)
    if progress is not None:
        planned = 2 * sum(np.size(params[n]) for n in (check or derivation.check))
        ev.on_batch = lambda done: progress(done, planned)
    names = list(check or derivation.check)
    base = H0 if unit == U64 else unit**STEP_EXPONENT
    # Wide steps take the scale of the whole point at least: a parameter of a few small entries (a bias) would
    # otherwise get a small step and a large rounding, and the wide estimate's truncation is measured, not assumed.
    first = _stage_one(ev, names, unit**WIDE_STEP_EXPONENT, _point_rms(ev.params)) if wide else _stage_one(ev, names, base)
    # After the first batched call, which settles whether the forward vmaps: ε_f is measured by the
    # engine that computed the differences.
    noise = forward_noise(ev, np.random.default_rng(seed), batched=True, unit=unit, line=wide or line)
    if wide:
        grads = {name: usual_where_needed(ev, name, noise, refine, estimate(ev, name, noise, refine, first[name]), base) for name in names}
    else:
        grads = {name: estimate(ev, name, noise, refine, first[name]) for name in names}
    return FDResult(gradients=grads, noise=noise, f0=ev.f0, evaluations=ev.evaluations, vectorized=ev.vectorized)


def _point_rms(params: Mapping[str, np.ndarray]) -> float:
    """rms over every entry of every parameter of the point."""
    flat = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in params.values()]) if params else np.zeros(0)
    return float(_rms(flat.reshape(1, -1), axis=1)[0]) if flat.size else 0.0


def usual_where_needed(ev: BatchedObjective, name: str, noise: float, refine: Refine | None, wide: FDEstimate, base: float) -> FDEstimate:
    """``wide`` (D(H) at the wide step H = u^(1/7)·s at every entry, Richardson from H, H/2, H/4 where it does not
    confirm the analytic value), with the usual estimate
    (step h = ``base``·s, refined where ``refine`` says) at the entries where the wide one is not sharper than
    any usual one could be (its error is not below ε_f/h) or has a kink within its steps; ``sharper`` picks
    per entry. The wide rounding, 6ε_f/H, is (H/h)/6 ≈ 180 times below the K_FD·ε_f/h of an entry confirmed at
    h, and its truncation is measured (|R2 − R1|, or the non-converged error), not assumed: where f is a
    polynomial of low degree in the entry (a convolution, an affine map) rounding is all there is."""
    x = ev.params[name].reshape(-1)
    h = steps_for(x, base=base)
    wide = other_steps(ev, name, noise, refine, wide, h)
    need = np.flatnonzero(wide.nondifferentiable.reshape(-1) | ~(wide.error.reshape(-1) < noise / h))
    if not need.size:
        return wide
    d1, fp, fm = (np.full(x.size, np.nan) for _ in range(3))
    d1[need], fp[need], fm[need], flipped = differences(ev, name, need, x[need], h[need])
    flat = [np.array(v, copy=True).reshape(-1) for v in (wide.value, wide.error, wide.step, wide.nondifferentiable, wide.refined)]
    for arr, part in zip(flat, (d1[need], noise / h[need], h[need], flipped, False), strict=True):
        arr[need] = part
    usual = FDEstimate(*(v.reshape(wide.value.shape) for v in flat))
    mask = np.zeros(x.size, dtype=bool)
    mask[need] = True if refine is None else np.asarray(refine(name, usual), dtype=bool).reshape(-1)[need]
    idx = np.flatnonzero(mask & ~usual.nondifferentiable.reshape(-1))
    if idx.size:
        refine_entries(ev, name, noise, usual, idx, x, h, d1, fp, fm)
    return sharper(usual, wide)


def other_steps(ev: BatchedObjective, name: str, noise: float, refine: Refine | None, wide: FDEstimate, h: np.ndarray) -> FDEstimate:
    """``wide`` with the entries that another difference confirms (``refine`` says it does not disagree, and no
    declared switch flips within it) estimated by that one, at its rounding error:

    * central differences at LADDER_UP·H, the largest first, at entries whose error is above SHARPEN_ABOVE of the
      gradient's largest value (the rounding ε_f/H of a bias whose Σ G cancels): error ε_f/step;
    * at entries with a kink within ±H (a max-pool competitor within the wide step), or whose error is not below
      ε_f/h for another reason, which the usual step h would otherwise judge at ε_f/h: the one-sided differences
      (f(x ± H) − f(x))/±H, error 2ε_f/H, each only where it also agrees with the central difference at h within
      both errors (the slope of the piece x lies on, not of the piece beyond the kink); then central differences
      at LADDER_DOWN·H.

    Where f is linear in the entry, or piecewise linear with no kink on the side or within the step, these are
    exact up to rounding; elsewhere they confirm nothing and the entry keeps its estimate. Without ``refine``
    (nothing to confirm), ``wide`` as it is. ``h``: the usual step of every entry."""
    if refine is None:
        return wide
    x = ev.params[name].reshape(-1)
    parts = (wide.value, wide.error, wide.step, wide.nondifferentiable, wide.refined)
    est = [np.array(v, copy=True).reshape(-1) for v in parts]
    base = est[2].copy()
    with np.errstate(invalid="ignore"):
        scale = float(np.max(np.abs(est[0][np.isfinite(est[0])]), initial=0.0))
        blunt = ~est[3] & ~(est[1] <= SHARPEN_ABOVE * scale)
    kinked = est[3] | ~(est[1] < noise / h)  # a kink within ±H, seen or not: the usual step would judge these

    def confirmed(idx, d, err, flipped, steps) -> np.ndarray:
        """Writes d at the entries of ``idx`` it confirms; which it does."""
        trial = FDEstimate(*(np.full(wide.value.shape, np.nan) for _ in range(3)), wide.nondifferentiable, wide.refined)
        trial.value.reshape(-1)[idx], trial.error.reshape(-1)[idx] = d, err
        ok = ~np.asarray(refine(name, trial), dtype=bool).reshape(-1)[idx] & ~flipped
        take = idx[ok]
        for arr, part in zip(est, (d[ok], err[ok], steps[ok], False, False), strict=True):
            arr[take] = part
        return ok

    for todo, factors in ((blunt, LADDER_UP), (kinked, LADDER_DOWN)):
        if todo is kinked and kinked.any():
            kinked[_one_sided(ev, name, noise, np.flatnonzero(kinked), x, base, h, confirmed)] = False
        for factor in factors:
            idx = np.flatnonzero(todo)
            if not idx.size:
                break
            hs = base[idx] * factor
            d, _, _, flipped = differences(ev, name, idx, x[idx], hs)
            todo[idx[confirmed(idx, d, noise / hs, flipped, hs)]] = False
    return FDEstimate(*(v.reshape(wide.value.shape) for v in est))


def _one_sided(ev: BatchedObjective, name: str, noise: float, idx, x, big, h, confirmed) -> np.ndarray:
    """The entries of ``idx`` that a one-sided difference at step ``big`` confirms (``confirmed`` writes it), each
    side only where it agrees with the central difference at the usual step ``h`` within both errors."""
    n, xi = len(idx), x[idx]
    xs = np.concatenate([xi + big[idx], xi - big[idx], xi + h[idx], xi - h[idx], xi[:1]])
    f, flips = ev.at_entries(name, np.concatenate([idx, idx, idx, idx, idx[:1]]), xs)
    f0 = f[-1]  # f at the point by the engine of the differences
    near = (f[2 * n : 3 * n] - f[3 * n : 4 * n]) / (xs[2 * n : 3 * n] - xs[3 * n : 4 * n])
    near_err = noise / h[idx]
    done = np.zeros(n, dtype=bool)
    for side in (0, 1):
        fs, xside = f[side * n : (side + 1) * n], xs[side * n : (side + 1) * n]
        d = (fs - f0) / (xside - xi)
        err = 2 * noise / np.abs(xside - xi)
        with np.errstate(invalid="ignore"):
            agrees = np.abs(d - near) <= err + near_err
        flipped = flips[side * n : (side + 1) * n] | flips[2 * n : 4 * n].reshape(2, n).any(axis=0) | ~agrees | done
        done |= confirmed(idx, d, err, flipped, np.abs(xside - xi))
    return idx[done]


def sharper(usual: FDEstimate, wide: FDEstimate) -> FDEstimate:
    """Per entry, the wide estimate where it has the smaller error and no kink within its steps; the usual
    one elsewhere (a kink within the wide step but not the usual one keeps the usual, differentiable estimate)."""
    take = ~wide.nondifferentiable & (wide.error < usual.error)
    pick = lambda w, u: np.where(take, w, u)
    return FDEstimate(
        pick(wide.value, usual.value),
        pick(wide.error, usual.error),
        pick(wide.step, usual.step),
        usual.nondifferentiable,
        pick(wide.refined, usual.refined),
    )
