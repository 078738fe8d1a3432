"""The numeric constants of the reference witnesses, each with its reason.

They are documented again, with the verdict's own thresholds, in ``verigrad.checks.verdict.thresholds``
(which re-exports them: one table), and derived in docs/tolerances.md. They live here because
``reference`` may not import ``checks``.
"""

from __future__ import annotations

import numpy as np

#: u, the unit roundoff of float64 (half its machine epsilon): every reference computes in float64.
U64 = float(np.finfo(np.float64).eps) / 2
#: The smallest positive normal float64: floors that must stay above zero (ε_f, τ_ex) never reach 0.
TINY = float(np.finfo(np.float64).tiny)

# --- finite differences (reference/_fd.py, docs/tolerances.md §2, §3, §5) ---------------------------
#: Base relative step of central differences: u^(1/3) balances their O(h²) truncation against their
#: O(u/h) rounding.
STEP_EXPONENT = 1 / 3
H0 = U64**STEP_EXPONENT
#: Wide step of the sharper differences a NumPy-only forward gets (reference/_fd.py::usual_where_needed), as a power of
#: u: Richardson from H, H/2, H/4 leaves an O(H⁶) remainder against a rounding of 6ε_f/H, balanced at H ≈ u^(1/7)
#: (5.3e-3 of the entry's scale in float64); its error is measured (|R2 − R1|), so a wider step is never trusted
#: beyond what the three steps show.
WIDE_STEP_EXPONENT = 1 / 7
#: Other steps of the wide differences (reference/_fd.py::other_steps), as factors of H, the largest first: an entry
#: whose error is above SHARPEN_ABOVE of its gradient's largest value tries LADDER_UP·H (up to 0.34 of the entry's
#: scale, so the forward's intermediates, and their rounding, stay within a small factor of their size at the point);
#: one with a kink within ±H tries LADDER_DOWN·H before the usual step. Only a step at which the difference confirms
#: the value it is checked against counts, at error ε_f/step: a linear (or piecewise linear, kink-free) entry is
#: exact there up to rounding; elsewhere the step confirms nothing and costs its two evaluations.
LADDER_UP = (64.0, 8.0)
LADDER_DOWN = (1 / 8, 1 / 64)
#: ... the error above which an entry tries them: K_FD·e (K_FD = 4) above 1e-10 of the gradient's largest value,
#: the smallest error a NumPy-only check aims to see (docs/tolerances.md §11).
SHARPEN_ABOVE = 2.5e-11
#: ε_f, the forward's rounding noise, is the spread of f over JITTER_POINTS points whose every entry
#: moves by about JITTER_ULPS ulps: far enough that each rounding is drawn afresh, near enough that
#: the true change of f (|∇f|·8 ulps) stays below the noise it measures.
JITTER_ULPS = 8
JITTER_POINTS = 8
#: ε_f is also read off f at LINE_POINTS points along a line, spaced by the smallest step the differences take (h/4),
#: from its differences of order LINE_ORDER (reference/_fd.py::line_noise): the jitter alone misses a rounding that
#: moves only when an intermediate moves by whole ulps of a much larger number (1 − σ(z) near σ(z) = 1). Order 3
#: removes the smooth part of f to ≈ (u^(1/3)/4)³ ≈ 1.5e-18 of its third derivative's scale and leaves 5 differences.
LINE_POINTS = 8
LINE_ORDER = 3
#: σ, a gradient's rounding, is read along SIGMA_LINES random lines through the point where the jitter's does not
#: suffice, each in both directions (docs/tolerances.md §4): per line the smaller of its two halves (a switch lies on
#: one side of the point; rounding shows on both), over the lines the larger (a random line can move an intermediate
#: by almost nothing when its entries' moves cancel in it, X·w moving by w·ΔX + X·Δw).
SIGMA_LINES = 2
#: Floor of ε_f, in units of u·|f|: a forward that happens to round the same at every jittered point
#: still carries a few roundings of its last operations.
NOISE_FLOOR_ULPS = 4
#: Rounding of a Richardson extrapolation from steps h, h/2, h/4, in units of ρ = ε_f/h: (4·4 + 2)/3
#: ≈ 6 (the step h/4 carries 4ρ, h/2 carries 2ρ).
RICHARDSON_ROUNDING = 6
#: Convergence at the O(h²) rate: D(h/2) − D(h/4) is about a quarter of D(h) − D(h/2); accepted up to
#: half of it plus CONVERGENCE_NOISE·ρ (the rounding of the two gaps, 2·(2ρ + 4ρ)).
CONVERGENCE_RATIO = 0.5
CONVERGENCE_NOISE = 12
#: Kink test: the gap between one-sided slopes J(s) shrinks as s where f is smooth (J(h/4) ≈ J(h)/4)
#: and stays near |b − a| across a kink, so J(h/4) > KINK_RATIO·J(h) marks one ...
KINK_RATIO = 0.5
#: ... when it is above KINK_NOISE·ρ as well: rounding puts up to 4ε_f/(h/4) = 16ρ into J(h/4); 32
#: leaves a factor 2 for ε_f being measured on a few jittered points only.
KINK_NOISE = 32

# --- the complex step (reference/_complex_step.py, docs/tolerances.md §11) ----------------------------
#: Relative step of the complex step Im f(x + i·h)/h, h = CS_STEP·s: its truncation, h²/6·|f'''|/|f'| ≈
#: CS_STEP²/6 ≈ 1.2e-43 relative, far below rounding; there is no subtraction, so no rounding grows as h
#: shrinks. 2⁻⁷⁰ ≈ 8.5e-22 keeps h·|∂f| clear of float64's subnormals for any entry scale above 1e-280.
CS_STEP = 2.0**-70

# --- autograd's rounding noise σ_t (reference/_autograd.py, docs/tolerances.md §4) ------------------
#: Where the forward's torch graph has no double backward, σ_t is the change of autograd under a jitter
#: of this many machine epsilons (16·eps = 32 u): the gradient's roundings are drawn afresh and its
#: true change, without a Hessian-vector product to remove it, stays at a few ulps.
FALLBACK_JITTER_EPS = 16

# --- batched evaluation (reference/_batched.py, reference/_stacked.py) -------------------------------
#: Memory one batched call may use, in bytes (perturbed copies plus an allowance for intermediates).
DEFAULT_MEMORY_BUDGET = 512 * 2**20
#: Intermediates of a forward are assumed to take at most this many times the total parameter size.
INTERMEDIATE_FACTOR = 4
#: Rows of one vmapped call per parameter at most, whatever the budget allows: beyond a few thousand
#: rows a call costs its arithmetic only, and larger stacks would only hold more memory at once.
MAX_CHUNK_ROWS = 4096
#: The vmapped forward at an unperturbed point must reproduce the NumPy value f0 to this many machine
#: epsilons of |f| (64·eps = 128 u) before it is trusted: batched kernels sum in another order, which
#: moves f by rounding and by nothing more. A stack compares its unperturbed rows the same way, or to
#: K_FD·ε_f where f is a cancelling sum (a layer's Σ G ⊙ out) whose rounding ε_f measures.
VMAP_AGREEMENT_ULPS = 64

# --- directional differences (reference/_projection.py) ----------------------------------------------
#: Evaluations of f per directional measurement: central differences at h and h/2.
EVALUATIONS_PER_MEASUREMENT = 4
#: Rounding of the directional Richardson estimate (4 m(h/2) − m(h))/3, in units of ε_f/h: (4·2 + 1)/3.
DIRECTIONAL_ROUNDING = 3
#: Entries one bisection reports at most (a wholly wrong torch graph is not worth more evaluations).
MAX_LOCALIZED = 8
#: Entries of a set bisection could not resolve that are kept to name it (a report shows the first few).
UNRESOLVED_LISTED = 16
