"""ReLU regression.

Objective (glossary: ``analytic/__init__.py``)::

    h = X W                         X:(N, D), W:(D, M), h:(N, M)
    r = max(h, 0) − Y               Y:(N, M), r:(N, M)
    f = ‖r‖²_F = Σ r²               scalar

Gradients, with the mask m = [h > 0] (N, M) (ReLU'(0) = 0)::

    ∂f/∂r = 2 r                                   (N, M)
    ∂f/∂h = 2 r ⊙ m                               (N, M)
    ∂f/∂W = Xᵀ (∂f/∂h)                            (D, N)(N, M) → (D, M)
    ∂f/∂X = (∂f/∂h) Wᵀ                            (N, M)(M, D) → (N, D)
    ∂f/∂Y = −2 r                                  (N, M)
"""

import numpy as np

from ._contract import Derivation


def forward(xp, X, W, Y):
    h = X @ W
    return xp.sum((h * (h > 0) - Y) ** 2)


def gradients(X, W, Y):
    h = X @ W
    r = np.maximum(h, 0.0) - Y
    dh = 2.0 * r * (h > 0)
    return {"W": X.T @ dh, "X": dh @ W.T, "Y": -2.0 * r}


DERIVATION = Derivation(
    name="relu_regression",
    shapes={"X": ("N", "D"), "W": ("D", "M"), "Y": ("N", "M")},
    forward=forward,
    gradients=gradients,
    kinks=lambda xp, X, W, Y: [X @ W],
)
