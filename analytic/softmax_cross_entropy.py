"""Softmax cross-entropy with soft targets, mean over the batch (scalar objective).

T holds per-class target weights, one row per example, entries in [0, 1) (drawn uniformly there; rows
need not sum to 1). A probability row — one-hot, label-smoothed or any distribution — is the usual
case, and then Σ_c T[n, c] = 1; the gradient below is written for general rows.

Objective (glossary: ``analytic/__init__.py``); log-softmax by a stable log-sum-exp with the row max m::

    m     = max_c Z[:, c]                         Z:(N, C), m:(N,)
    ℓ     = m + log(exp(Z − m 1ᵀ) 1)              log-sum-exp per row, ℓ:(N,)
    L     = Z − ℓ 1ᵀ                              log-softmax, L:(N, C)
    S     = exp(L)                                softmax, S:(N, C)
    f     = −(1/N) Σ T ⊙ L                        T:(N, C), scalar

Gradients, with the target row sums τ = T 1 (N,) (τ = 1 for probability rows)::

    ∂f/∂Z = (1/N) (S ⊙ (τ 1ᵀ) − T)                (N, C); = (S − T)/N when rows of T sum to 1
    ∂f/∂T = −(1/N) L                              (N, C)
"""

import numpy as np

from ._contract import Derivation


def log_softmax(xp, Z):
    m = xp.max(Z, axis=1, keepdims=True)
    return Z - m - xp.log(xp.sum(xp.exp(Z - m), axis=1, keepdims=True))


def forward(xp, Z, T):
    return -xp.sum(T * log_softmax(xp, Z)) / Z.shape[0]


def gradients(Z, T):
    L = log_softmax(np, Z)
    n = Z.shape[0]
    return {"Z": (np.exp(L) * T.sum(axis=1, keepdims=True) - T) / n, "T": -L / n}


DERIVATION = Derivation(
    name="softmax_cross_entropy",
    shapes={"Z": ("N", "C"), "T": ("N", "C")},
    ranges={"T": (0.0, 1.0)},
    forward=forward,
    gradients=gradients,
)
