"""tanh regression, squared Frobenius loss.

Objective (glossary: ``analytic/__init__.py``)::

    h = X W                         X:(N, D), W:(D, M), h:(N, M)
    r = tanh(h) − Y                 Y:(N, M), r:(N, M)
    f = ‖r‖²_F = Σ r²               scalar

Gradients, with t = tanh(h) and tanh'(h) = 1 − t ⊙ t = (1 − t) ⊙ (1 + t)::

    ∂f/∂r = 2 r                                   (N, M)
    ∂f/∂h = 2 r ⊙ (1 − t) ⊙ (1 + t)               (N, M)
    ∂f/∂W = Xᵀ (∂f/∂h)                            (D, N)(N, M) → (D, M)
    ∂f/∂X = (∂f/∂h) Wᵀ                            (N, M)(M, D) → (N, D)
    ∂f/∂Y = −2 r                                  (N, M)
"""

import numpy as np

from ._contract import Derivation


def forward(xp, X, W, Y):
    return xp.sum((xp.tanh(X @ W) - Y) ** 2)


def gradients(X, W, Y):
    t = np.tanh(X @ W)
    r = t - Y
    dh = 2.0 * r * (1.0 - t) * (1.0 + t)
    return {"W": X.T @ dh, "X": dh @ W.T, "Y": -2.0 * r}


DERIVATION = Derivation(
    name="tanh_regression",
    shapes={"X": ("N", "D"), "W": ("D", "M"), "Y": ("N", "M")},
    forward=forward,
    gradients=gradients,
)
