"""Both references for k points of one size, from one ``reference.Stack``: the one place an exhaustive
verdict takes autograd, the finite differences and, where a verdict needs it, the rounding noise (with
the hand-derived gradient's own, σ_a) from. A single point is a stack of one (checks/verdict/point.py); the search's points are
stacks of VALUES_PER_SIZE (checks/verdict/stacked.py).

``Unstackable`` (a forward that does not vmap, an op without double backward, a parameter the forward
ignores) propagates: the caller checks those points one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verigrad.analytic import Derivation
from verigrad.checks.verdict import thresholds as tol
from verigrad.checks.verdict.judge import refine_where_autograd_disagrees
from verigrad.checks.verdict.noise import stacked_analytic_noise, with_line_noise
from verigrad.reference import U64, FDEstimate, Stack

__all__ = ["StackedReferences", "stacked_references"]


@dataclass
class StackedReferences:
    """Autograd and the finite differences of every checked parameter at k points (leading axis k), and
    their rounding noise σ when asked (``measure_noise``): a verdict that every entry passes with σ = 0
    passes with any σ (τ_ex grows with σ), so σ is measured only where a verdict or a figure needs it."""

    auto: dict[str, np.ndarray]
    fd: dict[str, FDEstimate]
    noise: np.ndarray  # ε_f per point
    f0: np.ndarray  # f per point by the stack's batched kernels
    evaluations: np.ndarray  # forward evaluations per point, counted as a single point's check counts them
    stack: Stack
    analytic: Sequence[Mapping[str, Any] | None]
    sigma: dict[str, np.ndarray] | None = None  # None until measured

    def measure_noise(self) -> dict[str, np.ndarray]:
        """σ per parameter, point and entry (σ_t with the hand-derived gradients' own σ_a), measured once;
        autograd becomes the values of the call that measured it. ``Unstackable`` where the forward has
        no double backward."""
        if self.sigma is None:
            auto, sigma = self.stack.noise()
            stacked_analytic_noise(self.stack.derivation, sigma, self.analytic, self.stack.probes, auto)
            self.auto, self.sigma = auto, sigma
        return self.sigma

    def measure_line_noise(self, idx: Sequence[int]) -> dict[str, np.ndarray]:
        """σ as ``measure_noise``, at the points ``idx`` at least the rounding read along lines (noise.with_line_noise):
        where the jitter's σ does not suffice, a gradient whose rounding only a wider move shows (1 − t² of a saturated
        tanh, a multiple of ulp(1)). τ_ex grows with σ: a verdict the jitter's σ passes stands."""
        sigma = self.measure_noise()
        moved, g_moved, along = self.stack.line_autograd(idx)
        for r, i in enumerate(idx):
            point = [{n: v[i] for n, v in values.items()} for values in (sigma, self.auto)]
            line = [{n: v[r] for n, v in values.items()} for values in (moved, along)]
            g = None if g_moved is None else g_moved[r]
            new = with_line_noise(self.stack.derivation, point[0], self.analytic[i], point[1], line[0], g, line[1])
            for n, v in new.items():
                sigma[n][i] = v
        return sigma

    def agrees(self, f_numpy: np.ndarray) -> np.ndarray:
        """Per point, whether the batched forward reproduces f in NumPy: to VMAP_AGREEMENT_ULPS machine
        epsilons of |f|, or to K_FD·ε_f where f is a cancelling sum whose rounding ε_f measures."""
        f1 = np.asarray(f_numpy, dtype=np.float64)
        return np.abs(self.f0 - f1) <= np.maximum(tol.VMAP_AGREEMENT_ULPS * 2 * U64 * np.abs(f1), tol.K_FD * self.noise)


def fits_one_call(stack: Stack, check: Sequence[str]) -> bool:
    """Whether the finite differences of every point of ``stack`` fit one batched call of its memory budget
    (its chunks otherwise copy every parameter per row, where the single point's evaluator copies one)."""
    return stack.fd_rows(check) <= stack.chunk_rows()


def stacked_references(
    derivation: Derivation,
    stack: Stack,
    analytic: Sequence[Mapping[str, Any] | None],
    fd_seed: int,
    *,
    noise: bool = False,
    line: bool = False,
) -> StackedReferences:
    """The references at the points of ``stack``; ``analytic[i]``: the hand-derived gradients at point i
    (None when there are none to measure σ_a of), whose rounding noise joins autograd's in σ when measured:
    with ``noise``, at once (one autograd call for both), else when first asked (``measure_noise``). ``line``: ε_f
    of the finite differences at least the rounding along a line too (reference.Stack.finite_differences)."""
    rng = np.random.default_rng(fd_seed)
    at = {"jitters": tol.AUTOGRAD_JITTERS, "relative": tol.NOISE_JITTER}
    auto, sigma = stack.autograd_with_noise(rng, **at) if noise else (stack.autograd(rng, **at), None)
    if sigma is not None:
        stacked_analytic_noise(derivation, sigma, analytic, stack.probes, auto)
    est, eps, f0 = stack.finite_differences(list(derivation.check), refine_where_autograd_disagrees(auto), rng, line=line)
    return StackedReferences(auto, est, eps, f0, stack.evaluations, stack, analytic, sigma)
