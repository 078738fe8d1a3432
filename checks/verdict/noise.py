"""The rounding noise τ_ex counts: σ_t of the float64 autograd gradient and σ_a of the hand-derived one.

Both are measured at the same jittered points x' = x(1 + δ), δ ~ U(±NOISE_JITTER), as
|g(x') − g(x) − H·(x' − x)|: the Hessian-vector product (autograd's double backward) removes the true
change of the gradient, and what is left is the difference of two roundings (docs/tolerances.md §4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.report import Point
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.calls import gradients_at
from verigrad.reference import noise_from_line, rounding_noise


def autograd_noise(
    derivation: Derivation,
    point: Point,
    rng: np.random.Generator,
    device: str = "cpu",
    probes: list | None = None,
    *,
    at_base: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """σ_t per parameter and entry: the rounding noise of the float64 autograd gradient (reference.rounding_noise).

    Kept per entry so that the judgement can take the maximum over differentiable entries only: a
    switch within the jitter of 0 flips, and the gradient jump it causes at the kink entries is not
    rounding noise. A layer's grad_output is an input of its objective and is jittered too: a gradient
    that is a cancelling sum of G's entries (a bias gradient 1ᵀG) moves by ~u·Σ|G|, the scale its
    rounding has. ``at_base``: autograd at the point itself, when the caller already has it.
    """
    return rounding_noise(
        derivation,
        point.params,
        point.grad_output,
        rng,
        jitters=tol.AUTOGRAD_JITTERS,
        relative=tol.NOISE_JITTER,
        device=device,
        probes=probes,
        at_base=at_base,
    )


def _real(a: np.ndarray) -> bool:
    return a.dtype.kind in "fiu"  # floating or integer (np.issubdtype's answer, without its cost)


def analytic_noise(derivation: Derivation, analytic: Mapping[str, Any], probes, scale: Mapping[str, float]) -> dict[str, np.ndarray]:
    """σ_a per checked parameter and entry: |a(x') − a(x) − H·(x' − x)| at autograd's jittered points
    x' (``probes``: (x', grad_output', H·(x' − x)) each): the rounding of the hand-derived gradient
    itself, measured as σ_t measures autograd's.

    A correct formula can round far worse than u·max|g|: s ⊙ (1 − s) at a saturated sigmoid loses
    the digits 1 − s cancels, where autograd's chain through 1/(1 + e^−h) does not. A wrong formula
    gains nothing here: its error changes by about its own gradient times the jitter (2⁻²⁸ relative),
    not by its size. Entries where the gradient cannot be evaluated at x' get 0, and so do changes
    above ANALYTIC_NOISE_CAP·``scale[name]`` (max|t|): jumps, not rounding (checks/verdict/thresholds.py).
    """
    out: dict[str, np.ndarray] = {}
    for moved, g_moved, linear in probes:
        there = gradients_at(derivation, moved, g_moved)
        if there is None:
            continue
        with np.errstate(all="ignore"):
            for name in derivation.check:
                a0, a1 = analytic.get(name), there.get(name)
                if not _usable(a0, a1, linear[name]):
                    continue
                gap = np.abs(a1.astype(np.float64, copy=False) - a0.astype(np.float64, copy=False) - linear[name])
                gap = np.where(np.isfinite(gap) & (gap <= tol.ANALYTIC_NOISE_CAP * scale[name]), gap, 0.0)
                out[name] = np.maximum(out[name], gap) if name in out else gap
    return out


def combined_noise(sigma_t: np.ndarray, sigma_a: np.ndarray | None, analytic: Any) -> np.ndarray:
    """σ per entry such that τ_ex's C_NOISE·(u_a/u)·σ is C_NOISE·((u_a/u)·σ_t + σ_a) (σ_a is measured at
    the analytic gradient's own precision u_a)."""
    if sigma_a is None:
        return sigma_t
    a = np.asarray(analytic)
    u_a = tol.unit_roundoff(a.dtype) if np.issubdtype(a.dtype, np.floating) else tol.U64
    return sigma_t + sigma_a * (tol.U64 / u_a)


def noise_scale(auto: Mapping[str, np.ndarray]) -> dict[str, float]:
    """max|t| over the finite entries, per parameter: the scale ANALYTIC_NOISE_CAP is taken of."""
    out = {}
    for n, t in auto.items():
        m = np.abs(t)
        out[n] = float(np.max(m if np.isfinite(m).all() else m[np.isfinite(m)], initial=0.0))
    return out


def with_analytic_noise(derivation: Derivation, sigma: Mapping[str, np.ndarray], analytic: Mapping[str, Any], probes, auto) -> dict[str, np.ndarray]:
    """σ_t combined with σ_a per parameter (``combined_noise``), σ_a measured at ``probes``."""
    sigma_a = analytic_noise(derivation, analytic, probes, noise_scale(auto))
    return {n: combined_noise(v, sigma_a.get(n), analytic.get(n)) for n, v in sigma.items()}


def with_line_noise(
    derivation: Derivation,
    sigma: Mapping[str, np.ndarray],
    analytic: Mapping[str, Any] | None,
    auto: Mapping[str, np.ndarray],
    moved: Mapping[str, np.ndarray],
    g_moved: np.ndarray | None,
    auto_moved: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """σ per entry at one point, at least the rounding read along lines through it at the steps' scale
    (docs/tolerances.md §4): autograd's (``auto_moved``, at the lines' points ``moved`` and ``g_moved``, stacked along
    the first axis: reference.line_points) plus the hand-derived gradients' own (``analytic`` at the point, called
    again at each of the lines' points; ``auto``, autograd at the point, gives the shapes they must have). Each is the
    order-LINE_ORDER differences of the values along each half of a line (reference.noise_from_line), the smaller of
    a line's two halves per entry — rounding shows on both, a switch the line crosses (a jump, not rounding) lies on
    one side of the point only — and the larger over the lines."""
    there = []
    if analytic is not None:
        for j in range(len(next(iter(moved.values())))):
            there.append(gradients_at(derivation, {n: v[j] for n, v in moved.items()}, None if g_moved is None else g_moved[j]))
    out = {}
    for name, sig in sigma.items():
        line = _along_lines(auto_moved[name])
        a0 = None if analytic is None else analytic.get(name)
        a_line = [None if t is None else t.get(name) for t in there]
        if a_line and all(_usable(a0, a1, auto[name]) for a1 in a_line):
            u_a = tol.unit_roundoff(a0.dtype) if np.issubdtype(a0.dtype, np.floating) else tol.U64
            line = line + _along_lines(np.stack(a_line).astype(np.float64)) * (tol.U64 / u_a)
        out[name] = np.maximum(sig, line)
    return out


def _along_lines(along: np.ndarray) -> np.ndarray:
    """The rounding per entry of a gradient with values ``along`` at the points of the SIGMA_LINES lines
    (reference.line_points, stacked on the first axis): per line the smaller of its halves', over the lines the
    larger (0 where not finite). The point itself is left out: a value wrong there alone (a gradient that differs
    on one call) is not rounding of its neighbours."""
    halves = np.split(along, 2 * tol.SIGMA_LINES)
    spread = [noise_from_line(np.moveaxis(part, 0, -1)) for part in halves]
    return np.max([np.minimum(plus, minus) for plus, minus in zip(spread[::2], spread[1::2], strict=True)], axis=0)


def _usable(a0: Any, a1: Any, linear: np.ndarray) -> bool:
    """Whether σ_a can be measured from a gradient at the point (``a0``) and at a jittered copy (``a1``)."""
    if not (isinstance(a0, np.ndarray) and isinstance(a1, np.ndarray)):  # missing or Unreadable (calls.readable)
        return False
    return a0.shape == a1.shape == np.shape(linear) and _real(a0) and _real(a1)


def _gaps(rounds: list[list[tuple]], cap: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(σ_a per point and entry, which points have one) from ``rounds``: round j holds (i, a(x), a(x'), H·(x' − x))
    for point i's j-th usable jittered copy; as ``analytic_noise``, the largest capped gap over the copies
    (every round's rows at once: a maximum is the same in any order)."""
    rows = [r for block in rounds for r in block]
    idx = np.array([r[0] for r in rows])
    with np.errstate(all="ignore"):
        a1 = np.stack([r[2].astype(np.float64, copy=False) for r in rows])
        a0 = np.stack([r[1].astype(np.float64, copy=False) for r in rows])
        g = np.abs(a1 - a0 - np.stack([r[3] for r in rows]))
        g = np.where(np.isfinite(g) & (g <= cap[idx].reshape(-1, *([1] * (g.ndim - 1)))), g, 0.0)
    gap, seen = np.zeros(shape), np.zeros(shape[0], dtype=bool)
    np.maximum.at(gap, idx, g)  # every gap is finite and >= 0: the maximum over a point's copies
    seen[idx] = True
    return gap, seen


def stacked_analytic_noise(derivation: Derivation, sigma: dict[str, np.ndarray], analytic: Sequence[Mapping[str, Any] | None], probes, auto) -> None:
    """``with_analytic_noise`` at every point of a stack, written into ``sigma`` (leading point axis, as
    ``auto``): ``analytic[i]`` the gradients at point i (None: nothing to measure), ``probes[i]`` its jittered
    copies. The user's gradients are called at each jittered copy as there, point by point; the arithmetic,
    the same per entry, runs along the point axis."""
    k = len(analytic)
    rounds: dict[str, list[list[tuple]]] = {n: [] for n in derivation.check}
    for i, grads in enumerate(analytic):
        if grads is None:
            continue
        used = dict.fromkeys(rounds, 0)
        for moved, g_moved, linear in probes[i]:
            there = gradients_at(derivation, moved, g_moved)
            if there is None:
                continue
            for name, per in rounds.items():
                a0, a1 = grads.get(name), there.get(name)
                if _usable(a0, a1, linear[name]):
                    if used[name] == len(per):
                        per.append([])
                    per[used[name]].append((i, a0, a1, linear[name]))
                    used[name] += 1
    for name, per in rounds.items():
        if not per:
            continue
        t = np.abs(auto[name]).reshape(k, -1)
        cap = tol.ANALYTIC_NOISE_CAP * np.max(np.where(np.isfinite(t), t, 0.0), axis=1, initial=0.0)  # of max|t| per point
        gap, seen = _gaps(per, cap, sigma[name].shape)
        for i in np.flatnonzero(seen):
            sigma[name][i] = combined_noise(sigma[name][i], gap[i], analytic[i].get(name))
