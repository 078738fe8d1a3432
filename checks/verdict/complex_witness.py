"""The complex step as the exact witness of a NumPy-only forward, verified before it is trusted.

For each checked gradient (docs/tolerances.md §11):

* t = Im f(x + i·h·e_k)/h per entry (reference/_complex_step.py), or the reason it is refused;
* its rounding, with the analytic gradient's, where τ_ex's size term alone does not settle the verdict (σ only
  widens τ_ex, so a gradient that passes without it passes with it): at PAIR_JITTERS jittered copies
  x' = x(1 + δ), δ ~ U(±NOISE_JITTER), σ = the largest change of a − t between any two of them and the point.
  Both gradients change by the same H·(x' − x), which cancels in their difference: what is left is the two
  roundings (and a wrong formula's own change, 2⁻²⁸ of its
  error, which hides nothing). A change above ANALYTIC_NOISE_CAP·max|t| is a switch flipped, not
  rounding, and counts 0, as σ_a does (checks/verdict/noise.py). Where the analytic gradient is not
  there at x', σ is t's own change;
* trusted only when finite differences agree: a central difference along a random direction v of the
  gradient's entries (reference.DirectionalFD, Richardson at h and h/2, within K_FD·e plus τ_ex·Σ|v|)
  must confirm ⟨t, v⟩ — where it does not with ε_f from the jitter, once more along another direction with
  ε_f read at the steps' scale too (reference/_fd.py::line_noise), before t is refused. Code that drops
  part of the imaginary channel is caught here as soon as the part dropped is above the differences' error;
  a gradient whose direction crosses a declared switch, or disagrees, is judged by finite differences alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.calls import gradients_at
from verigrad.checks.verdict.judge import exact_tolerance
from verigrad.reference import BatchedObjective, DirectionalFD, Support, complex_step, forward_noise, random_direction

__all__ = ["Sharp", "complex_witness", "pair_noise"]


@dataclass
class Sharp:
    """The complex-step gradients that passed verification (``values``) with their rounding noise σ per entry,
    and why the others are judged by finite differences alone (``refused``)."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    sigma: dict[str, np.ndarray] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    evaluations: int = 0


def _jittered(params: Mapping[str, np.ndarray], g_out, rng: np.random.Generator, relative: float) -> tuple[dict[str, np.ndarray], Any]:
    move = lambda v: v * (1.0 + relative * rng.uniform(-1.0, 1.0, np.shape(v)))
    return {n: move(np.asarray(v, dtype=np.float64)) for n, v in params.items()}, None if g_out is None else move(g_out)


def _noise(gaps: list[np.ndarray], t0: np.ndarray) -> np.ndarray:
    """σ per entry from a − t at the point and at its jittered copies (``gaps``, the point's first): the largest
    change between any two; a change above ANALYTIC_NOISE_CAP·max|t| is a switch flipped, and counts 0."""
    spread, cap = _spread(gaps), _cap(t0)
    return np.where(np.isfinite(spread) & (spread <= cap), spread, 0.0)


def _spread(gaps: list[np.ndarray]) -> np.ndarray:
    g = np.stack(gaps)
    with np.errstate(all="ignore"):
        return np.max(g, axis=0) - np.min(g, axis=0)


def _cap(t: np.ndarray) -> float:
    return tol.ANALYTIC_NOISE_CAP * float(np.max(np.abs(t), initial=0.0))


def _gaps(pairs: list[tuple[np.ndarray, Any]]) -> list[np.ndarray]:
    """a − t at each of the points (t, a); t alone where the analytic gradient is not there at one of them (its
    own change, true change included, is then σ: wider, never narrower)."""
    usable = all(isinstance(a, np.ndarray) and a.shape == t.shape and a.dtype.kind in "fiu" for t, a in pairs)
    with np.errstate(all="ignore"):
        return [a.astype(np.float64) - t if usable else t for t, a in pairs]


def complex_witness(derivation: Derivation, ev: BatchedObjective, total_dims: int, seed: int) -> Sharp:
    """The verified complex-step witness of every checked gradient of a NumPy-only forward at ``ev``'s point, with
    σ = 0 (``pair_noise`` measures it where a judgement needs more than τ_ex's size term)."""
    out = Sharp()
    cs = complex_step(derivation, ev.params, ev.grad_output, derivation.check)
    out.refused.update(cs.refused)
    out.evaluations += cs.evaluations
    if not cs.values:
        return out
    rng = np.random.default_rng(seed)
    noise, lined = forward_noise(ev, rng), False
    for name, t in cs.values.items():
        tau = float(exact_tolerance(np.zeros((1, *t.shape)), tol.U64, total_dims, t[None])[0])
        why = _unconfirmed(ev, name, t, tau, noise, rng)
        if why and not lined:  # ε_f read at the steps' scale as well before the complex step is refused (§2)
            noise, lined = max(noise, forward_noise(ev, rng, line=True)), True
            why = _unconfirmed(ev, name, t, tau, noise, rng)
        if why:
            out.refused[name] = why
        else:
            out.values[name], out.sigma[name] = t, np.zeros(t.shape)
    return out


def pair_noise(derivation: Derivation, ev: BatchedObjective, analytic: Any, name: str, sharp: Sharp, seed: int, *, coarse: bool = False) -> bool:
    """σ of ``name`` measured at PAIR_JITTERS jittered copies of the point, into ``sharp.sigma``; False where the
    complex step cannot be had there (the verdict keeps σ = 0). Called only where τ_ex with σ = 0 does not settle
    the verdict: σ can only widen τ_ex, so a gradient that passes without it passes with it.

    ``coarse`` (where σ from NOISE_JITTER does not settle it either): copies moved by H0/4 of each entry, the
    differences' smallest step, which draws afresh a rounding the small jitter leaves as it is (1 − σ(z) for σ(z)
    near 1 inside the forward's log: docs/tolerances.md §11). σ takes their spread as well; where a − t moves
    there by more than ANALYTIC_NOISE_CAP·max|t| — beyond the rounding of a sound formula, or a switch within the
    differences' own step — t is no witness at that precision: refused (``sharp.refused``), False."""
    rng = np.random.default_rng(seed)
    t = sharp.values[name]
    pairs = [(t, analytic)]
    for _ in range(tol.PAIR_JITTERS):
        moved, g_moved = _jittered(ev.params, ev.grad_output, rng, tol.H0 / 4 if coarse else tol.NOISE_JITTER)
        there = complex_step(derivation, moved, g_moved, [name])
        sharp.evaluations += there.evaluations
        if name not in there.values:
            return False
        pairs.append((there.values[name], (gradients_at(derivation, moved, g_moved) or {}).get(name)))
    if not coarse:
        sharp.sigma[name] = _noise(_gaps(pairs), t)
        return True
    spread = _spread(_gaps(pairs))
    if not np.all(np.isfinite(spread) & (spread <= _cap(t))):
        moved_by = float(np.max(np.where(np.isfinite(spread), spread, np.inf))) / max(float(np.max(np.abs(t))), tol.TINY)
        sharp.refused[name] = (
            f"the complex step is not exact to rounding here: a − t moves by {moved_by:.1e} of max|t| between points"
            " a smallest finite-difference step apart (a rounding the forward amplifies, or a switch within that step)"
        )
        return False
    sharp.sigma[name] = np.maximum(sharp.sigma[name], spread)
    return True


def _unconfirmed(ev: BatchedObjective, name: str, t: np.ndarray, tau: float, noise: float, rng: np.random.Generator) -> str | None:
    """Why finite differences along a random direction do not confirm ``t`` (None: they do)."""
    support = Support(ev.params, [name])
    m = DirectionalFD(ev, support, noise, {name: t}, {name: tau}, tol.K_FD).measure(np.arange(support.size), random_direction(support.size, rng))
    if m.nondifferentiable:
        return "a declared switch changes sign along the finite differences that verify the complex step"
    if m.disagrees:
        return (
            f"finite differences along a random direction give {m.derivative:.6g}, the complex step {m.claimed:.6g}:"
            " the forward is not analytic (or drops part of the imaginary part)"
        )
    return None
