"""Both references for k points of one size, from one ``reference.Stack``: the one place an exhaustive
verdict takes autograd, its rounding noise (with the hand-derived gradient's own, σ_a) and the finite
differences from. A single point is a stack of one (checks/verdict/point.py); the search's points are
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
from verigrad.checks.verdict.noise import stacked_analytic_noise
from verigrad.reference import U64, FDEstimate, Stack

__all__ = ["StackedReferences", "stacked_references"]


@dataclass
class StackedReferences:
    """Autograd, σ and the finite differences of every checked parameter at k points (leading axis k)."""

    auto: dict[str, np.ndarray]
    sigma: dict[str, np.ndarray]
    fd: dict[str, FDEstimate]
    noise: np.ndarray  # ε_f per point
    f0: np.ndarray  # f per point by the stack's batched kernels
    evaluations: np.ndarray  # forward evaluations per point, counted as a single point's check counts them

    def agrees(self, f_numpy: np.ndarray) -> np.ndarray:
        """Per point, whether the batched forward reproduces f in NumPy: to VMAP_AGREEMENT_ULPS machine
        epsilons of |f|, or to K_FD·ε_f where f is a cancelling sum whose rounding ε_f measures."""
        f1 = np.asarray(f_numpy, dtype=np.float64)
        return np.abs(self.f0 - f1) <= np.maximum(tol.VMAP_AGREEMENT_ULPS * 2 * U64 * np.abs(f1), tol.K_FD * self.noise)

    def at(self, i: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, FDEstimate]]:
        """(autograd, σ, finite differences) of point ``i`` alone, without the leading axis."""
        fd = {n: FDEstimate(e.value[i], e.error[i], e.step[i], e.nondifferentiable[i], e.refined[i]) for n, e in self.fd.items()}
        return {n: t[i] for n, t in self.auto.items()}, {n: s[i] for n, s in self.sigma.items()}, fd


def fits_one_call(stack: Stack, check: Sequence[str]) -> bool:
    """Whether the finite differences of every point of ``stack`` fit one batched call of its memory budget
    (its chunks otherwise copy every parameter per row, where the single point's evaluator copies one)."""
    return stack.fd_rows(check) <= stack.chunk_rows()


def stacked_references(
    derivation: Derivation,
    stack: Stack,
    analytic: Sequence[Mapping[str, Any] | None],
    fd_seed: int,
) -> StackedReferences:
    """The references at the points of ``stack``; ``analytic[i]``: the hand-derived gradients at point i
    (None when there are none to measure σ_a of), whose rounding noise joins autograd's in σ."""
    rng = np.random.default_rng(fd_seed)
    auto, sigma = stack.autograd(rng, jitters=tol.AUTOGRAD_JITTERS, relative=tol.NOISE_JITTER)
    stacked_analytic_noise(derivation, sigma, analytic, stack.probes, auto)
    est, noise, f0 = stack.finite_differences(list(derivation.check), refine_where_autograd_disagrees(auto), rng)
    return StackedReferences(auto, sigma, est, noise, f0, stack.evaluations)
