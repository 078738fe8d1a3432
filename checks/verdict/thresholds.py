"""Acceptance thresholds, as data with their reasons. The derivation is in docs/tolerances.md."""

from __future__ import annotations

import numpy as np

U64 = float(np.finfo(np.float64).eps) / 2

#: Analytic vs autograd, both exact up to rounding. The bound is
#:   τ_ex = C_NOISE · (u_a / u_64) · σ_t  +  C_SIZE · u_a · √L · max|t|
#: σ_t: the rounding noise of the float64 autograd gradient, measured at this point: the change of
#: autograd under a jitter of the inputs less its Hessian-vector product (reference.rounding_noise); u_a: unit roundoff of
#: the analytic gradient's dtype; L: the sum of all dims (a bound on inner-product lengths).
C_NOISE = 16.0
C_SIZE = 4.0
#: Jittered points x(1 + δ) at which autograd and its Hessian-vector product measure σ_t.
AUTOGRAD_JITTERS = 2
#: Relative size of δ for σ_t: 2^-28 ≈ 3.7e-9, about 2^24 ulps. Wide enough that every rounded
#: intermediate moves by many ulps (so its rounding is drawn afresh) — also a saturated one: tanh(h)
#: at h ≈ 11 (1 − t² ≈ 1e-9) moves by under an ulp under 2^-32, so NumPy's and torch's tanh, a few
#: ulps apart there, made ∂f/∂X of tanh_regression differ by 30× the σ_t measured (N=1, D=7, M=1,
#: seed 324); at 2^-28 t moves and σ_t covers it. Narrow enough that the remainder of the linear
#: correction, |g''|·δ² (~1e-17 relative, below u), and the switches it can flip (|s| < 4e-9, far
#: inside any finite-difference step) do not matter. Saturation much deeper than u/δ ≈ 3e-8 (1 − t²)
#: is out of reach of any such jitter: docs/tolerances.md §4.
NOISE_JITTER = 2.0**-28

#: σ_a, the analytic gradient's own rounding noise (checks/verdict/point.py::analytic_noise), counts only up to
#: √u·max|t| per entry. Rounding of a sound float64 formula stays far below that even where it cancels
#: (s ⊙ (1 − s) at a saturated sigmoid loses digits of terms that are themselves small); a change above
#: it is a jump — a switch flipped by the jitter — not noise. The cap also bounds what σ_a can add to
#: τ_ex: C_NOISE·√u ≈ 2.4e-7 of max|t|, so an error of 1e-6·max|g| is never hidden by it.
ANALYTIC_NOISE_CAP = float(np.sqrt(U64))

#: Finite differences vs an exact witness: |d − t| ≤ K_FD · e_i + τ_ex, with e_i the finite
#: difference's own error estimate (reference/_fd.py). K_FD covers the gap between the measured
#: rounding noise ε_f and its worst realisation in two evaluations.
K_FD = 4.0


def unit_roundoff(dtype: np.dtype) -> float:
    """u of a floating dtype, never finer than float64 (the references' precision)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return max(float(np.finfo(dtype).eps) / 2, U64)
    return U64


def exact_bound(sigma_t: float, u_a: float, total_dims: int, max_ref: float) -> float:
    """τ_ex: how far two exact gradients may differ by rounding alone."""
    tiny = np.finfo(np.float64).tiny
    return C_NOISE * (u_a / U64) * sigma_t + C_SIZE * u_a * np.sqrt(max(total_dims, 1)) * max_ref + tiny


#: The forward is evaluated this many more times in NumPy at the same point: any difference means it
#: is not deterministic (unseeded dropout). With one random mask entry, 1 + 3 NumPy evaluations and one
#: torch evaluation all agree by chance with probability 2⁻⁴, against 2⁻¹ for a single repeat.
DETERMINISM_REPEATS = 3
#: NumPy and torch evaluate the same forward in different summation orders; their values may differ
#: by rounding (~u·L·Σ|terms|) but not by 1e-8 relative, which only a random or library-dependent
#: forward produces.
BACKEND_RTOL = 1e-8
