"""Projection mode: the three-way verdict at one point with O(1) forward evaluations, for large parameters.

* Analytic vs autograd at every entry (one backward, bound τ_ex): localizes every analytic error, as
  in exhaustive mode (the judgement is ``checks/verdict/judge.py``, shared).
* Finite differences confirm autograd and the forward along a few random directions per parameter
  (reference/_projection.py: Richardson at h and h/2, error model ε_f/h and truncation, so the
  acceptance threshold comes from the error model, never a fixed tolerance).
* On a directional disagreement, group testing bisects the direction's support down to the exact
  entries; those, and the entries where analytic and autograd disagree, get per-entry central
  differences (reference.differences) so that each of them is judged three ways exactly as exhaustively.

Cost: 1 + 8 evaluations (f0, rounding noise), 4 per direction, 4 per bisection level (≈ log2 of the
parameter's size for an isolated entry) and 2–6 per entry checked individually.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import FAIL, PASS, Blame, GradientReport, Point, Report
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.before import conclude, error_report, judge_param, name_graph_cause
from verigrad.checks.verdict.judge import exact_tolerance, precision_of
from verigrad.checks.verdict.point import prepare, seeded
from verigrad.checks.verdict.thresholds import (
    CROSSOVER_ENTRIES,
    DEFAULT_BUDGET,
    DEFAULT_DIRECTIONS,
    ENTRY_RESERVE,
    EVALUATIONS_PER_ENTRY,
    MAX_ENTRY_FD,
    MAX_LOCALIZED,
)
from verigrad.reference import (
    U64,
    BatchedObjective,
    DirectionalFD,
    FDEstimate,
    ForwardError,
    Localization,
    Measurement,
    Support,
    differences,
    forward_noise,
    random_direction,
    refine_entries,
    steps_for,
)

Mode = Literal["exhaustive", "projection"]


def checked_entries(derivation: Derivation, point: Point) -> int:
    return int(sum(np.size(point.params[n]) for n in derivation.check))


def choose_mode(derivation: Derivation, point: Point, *, crossover: int = CROSSOVER_ENTRIES) -> Mode:
    """Pick "exhaustive" (per-entry finite differences) up to ``crossover`` checked entries, else "projection"."""
    return "exhaustive" if checked_entries(derivation, point) <= crossover else "projection"


def _suspects(analytic, auto: np.ndarray, sigma, total_dims: int, limit: int) -> np.ndarray:
    """Flat indices where autograd is non-finite or disagrees with the analytic gradient beyond τ_ex (worst first)."""
    bad_t = np.flatnonzero(~np.isfinite(auto))
    a = None if analytic is None else np.asarray(analytic)
    if a is None or a.shape != auto.shape or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        return bad_t[:limit]
    finite = np.isfinite(auto)
    tau = float(exact_tolerance(np.asarray(sigma, dtype=np.float64)[None], precision_of(a), total_dims, auto[None])[0])
    with np.errstate(invalid="ignore"):
        gap = np.where(finite, np.abs(a.astype(np.float64) - auto), 0.0).reshape(-1)
    gap = np.where(np.isnan(gap), np.inf, gap)
    off = np.flatnonzero(gap > tau)
    off = off[np.argsort(-gap[off], kind="stable")]
    return np.concatenate([bad_t, off])[:limit]


def _entry_fd(ev: BatchedObjective, name: str, noise: float, auto: np.ndarray, idx: np.ndarray) -> FDEstimate:
    """An FDEstimate that holds per-entry central differences at ``idx`` and autograd's values elsewhere.

    Elsewhere the directional tests stand in for the finite-difference witness (error 0: the entries
    are judged on analytic vs autograd alone, autograd having been confirmed along the directions).
    """
    x = ev.params[name].reshape(-1)
    shape = ev.params[name].shape
    h = steps_for(x)
    est = FDEstimate(
        value=auto.astype(np.float64, copy=True),
        error=np.zeros(shape),
        step=h.reshape(shape),
        nondifferentiable=np.zeros(shape, dtype=bool),
        refined=np.zeros(shape, dtype=bool),
    )
    if idx.size == 0:
        return est
    d1, fp, fm, flipped = differences(ev, name, idx, x[idx], h[idx])
    value, err, nd = est.value.reshape(-1), est.error.reshape(-1), est.nondifferentiable.reshape(-1)
    value[idx], err[idx], nd[idx] = d1, noise / h[idx], flipped
    t = auto.reshape(-1)[idx]
    with np.errstate(invalid="ignore"):
        disagree = ~np.isfinite(t) | ~(np.abs(d1 - t) <= tol.K_FD * noise / h[idx])
    ridx = idx[disagree & ~flipped]
    if ridx.size:
        full = lambda part: np.bincount(idx, weights=part, minlength=x.size)
        refine_entries(ev, name, noise, est, ridx, x, h, full(d1), full(fp), full(fm))
    return est


def _fmt(entries: list[tuple[str, int]], shapes: Mapping[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{n}{tuple(int(i) for i in np.unravel_index(k, shapes[n]))}" for n, k in entries)


def evaluate_projection(
    derivation: Derivation,
    point: Point,
    *,
    directions: int = DEFAULT_DIRECTIONS,
    seed: int = 0,
    budget: int = DEFAULT_BUDGET,
    device: str = "cpu",
) -> Report:
    """Check ``derivation`` at one point: entry-level analytic vs autograd, directional finite differences (the
    global generators seeded from the point's seed before every call of user code: ``point.seeded``)."""
    if directions < 1:
        raise ValueError(f"directions must be >= 1, got {directions}")
    return seeded(point, lambda: _projection(derivation, point, directions, seed, budget, device))


def _projection(derivation: Derivation, point: Point, directions: int, seed: int, budget: int, device: str) -> Report:
    prep = prepare(derivation, point, mode="projection", seed=seed, device=device)
    if isinstance(prep, Report):
        return prep
    rep, started, params, g_out = prep.rep, prep.started, prep.params, prep.grad_output
    analytic, auto, sigma, total_dims = prep.analytic, prep.auto, prep.sigma, prep.total_dims

    rng = np.random.default_rng(seed)
    try:
        ev = BatchedObjective(derivation, params, g_out, f0=prep.f0)
        noise = forward_noise(ev, rng)
        # All directions first, then bisection with what the budget leaves (less a reserve for the
        # per-entry differences of what it finds): a disagreement in one parameter cannot starve the
        # confirmation of the others.
        probes = {name: _directions(ev, name, auto, sigma, total_dims, noise, directions, rng) for name in derivation.check}
        directional = {name: _localize(ev, name, *probes[name], budget - ENTRY_RESERVE) for name in derivation.check}
        unresolved = {name: any(m.disagrees for _, m in probes[name][2]) and not directional[name][0] for name in derivation.check}
        shapes = {n: np.shape(params[n]) for n in derivation.params}
        for name in derivation.check:
            localized, notes, bound = directional[name]
            a = None if analytic is None else analytic.get(name)
            cap = max(0, min(MAX_ENTRY_FD, (budget - ev.evaluations) // EVALUATIONS_PER_ENTRY))
            idx = np.union1d(_suspects(a, auto[name], sigma[name], total_dims, cap), np.asarray(localized, dtype=np.int64))
            est = _entry_fd(ev, name, noise, auto[name], idx.astype(np.int64))
            g = judge_param(prep, name, est)
            g.threshold["directional_max"] = bound
            if localized:
                notes.insert(0, f"directional finite differences disagree with autograd at {_fmt([(name, k) for k in localized], shapes)}")
            g.warnings.extend(notes)
            if unresolved[name] and g.status == PASS:
                _unresolved_fails(g)
            rep.gradients.append(g)
    except ForwardError as e:
        return error_report(rep, str(e), started)
    rep.evaluations = ev.evaluations
    name_graph_cause(derivation, params, g_out, rep)
    return conclude(rep, started)


def _unresolved_fails(g: GradientReport) -> None:
    """A direction along which the finite differences disagree with autograd, while the analytic gradient agrees
    with autograd wherever it was compared: along it the analytic gradient is not the function's either (the
    judgement of a graph entry, checks/verdict/judge.py), although no single entry could be named within the budget."""
    g.status, g.blame = FAIL, Blame.GRAPH
    g.message = (
        f"the analytic gradient of {g.param} agrees with autograd, but finite differences of the forward disagree with both"
        " along a random direction (not localized to single entries within the budget): torch's graph is not the forward's function"
    )


def _directions(
    ev: BatchedObjective,
    name: str,
    auto: Mapping[str, np.ndarray],
    sigma: Mapping[str, object],
    total_dims: int,
    noise: float,
    directions: int,
    rng: np.random.Generator,
) -> tuple[DirectionalFD, np.ndarray, list[tuple[np.ndarray, Measurement]]]:
    """Measure ``directions`` random directions over ``name``'s entries where autograd is finite."""
    t = auto[name]
    finite = np.isfinite(t)
    tau = {name: float(exact_tolerance(np.asarray(sigma[name], dtype=np.float64)[None], U64, total_dims, t[None])[0])}
    dfd = DirectionalFD(ev, Support(ev.params, [name]), noise, {name: np.where(finite, t, 0.0)}, tau, tol.K_FD)
    live = np.flatnonzero(finite.reshape(-1))
    measured = []
    if live.size:
        for _ in range(directions):
            z = random_direction(live.size, rng)
            measured.append((z, dfd.measure(live, z)))
    return dfd, live, measured


def _localize(
    ev: BatchedObjective,
    name: str,
    dfd: DirectionalFD,
    live: np.ndarray,
    measured: list[tuple[np.ndarray, Measurement]],
    budget: int,
) -> tuple[list[int], list[str], float]:
    """Bisect the first disagreeing direction; returns localized flat indices, warnings, largest bound used."""
    localized: list[int] = []
    notes: list[str] = []
    shapes = {name: ev.params[name].shape}
    worst = max((m.bound for _, m in measured), default=0.0)
    if any(m.nondifferentiable for _, m in measured):
        notes.append("a declared switch changes sign along a random direction's step: that direction was not used")
    bad = [(z, m) for z, m in measured if m.disagrees]
    if not bad:
        return localized, notes, worst
    z, m = bad[0]
    loc: Localization = dfd.localize(live, z, m, budget=max(0, budget - ev.evaluations), max_found=MAX_LOCALIZED)
    localized.extend(dict.fromkeys(k for _, k in loc.found))
    if loc.unresolved:
        notes.append(
            f"directional finite differences disagree with autograd (mismatch {m.mismatch:.3g} > bound {m.bound:.3g}); "
            f"not localized to single entries within the budget; first unresolved set starts at {_fmt(loc.unresolved[0][:4], shapes)}"
        )
    return localized, notes, worst
