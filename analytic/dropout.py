"""Inverted dropout in training mode, its mask drawn from a per-point seed: a layer derivation.

The forward is random; it is a function of x once the mask is fixed, and the mask is fixed by the
seed the harness hands to both functions (the same int at a point, replayed with it). Each function
draws the mask itself from ``np.random.default_rng(seed)``, as real code does. The drop probability
p is a hyperparameter. Forward (glossary: ``analytic/__init__.py``)::

    u ~ U[0, 1)^(N, D) from default_rng(seed)   (the same u in forward and gradients)
    M = [u ≥ p]                                 keep mask, M:(N, D)
    Y = X ⊙ M / (1 − p)                         X:(N, D), Y:(N, D); E[Y] = X
    f = ⟨G, Y⟩                                  G = grad_output:(N, D)

Gradient, linear in X with a fixed diagonal::

    ∂f/∂X = G ⊙ M / (1 − p)                     (N, D): the dropped entries get 0
"""

import numpy as np
from array_api_compat import device

from ._contract import Derivation


def keep(shape, p, seed):
    """The keep mask scaled by 1/(1 − p), in NumPy (float64)."""
    return (np.random.default_rng(seed).random(shape) >= p) / (1.0 - p)


def forward(xp, X, p, seed):
    return X * xp.asarray(keep(tuple(X.shape), p, seed), dtype=X.dtype, device=device(X))


def gradients(X, p, seed, grad_output):
    return {"X": grad_output * keep(X.shape, p, seed)}


DERIVATION = Derivation(
    name="dropout",
    shapes={"X": ("N", "D")},
    hyper={"p": [0.5, 0.2]},
    seed=True,
    output=("N", "D"),
    forward=forward,
    gradients=gradients,
)
