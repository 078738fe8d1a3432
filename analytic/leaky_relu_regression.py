"""Leaky-ReLU regression, squared Frobenius loss.

Objective (glossary: ``analytic/__init__.py``), with the negative slope α = ALPHA = 0.01::

    h = X W                         X:(N, D), W:(D, M), h:(N, M)
    a = leaky(h) = h where h > 0, α h elsewhere                     a:(N, M)
    r = a − Y                       Y:(N, M), r:(N, M)
    f = ‖r‖²_F = Σ r²               scalar

Gradients, with the slope k = [h > 0] + α [h ≤ 0] (N, M). At the kink h = 0 the subgradient is α,
the convention of ``torch.nn.functional.leaky_relu`` and of the forward's ``where(h > 0, h, α h)``
under torch autograd (it is the slope of the branch taken when the condition is false)::

    ∂f/∂r = 2 r                                   (N, M)
    ∂f/∂h = 2 r ⊙ k                               (N, M)
    ∂f/∂W = Xᵀ (∂f/∂h)                            (D, N)(N, M) → (D, M)
    ∂f/∂X = (∂f/∂h) Wᵀ                            (N, M)(M, D) → (N, D)
    ∂f/∂Y = −2 r                                  (N, M)
"""

import numpy as np

from ._contract import Derivation

#: Slope of the negative part (torch.nn.LeakyReLU's default negative_slope).
ALPHA = 0.01


def forward(xp, X, W, Y):
    h = X @ W
    return xp.sum((xp.where(h > 0, h, ALPHA * h) - Y) ** 2)


def gradients(X, W, Y):
    h = X @ W
    r = np.where(h > 0, h, ALPHA * h) - Y
    dh = 2.0 * r * np.where(h > 0, 1.0, ALPHA)
    return {"W": X.T @ dh, "X": dh @ W.T, "Y": -2.0 * r}


DERIVATION = Derivation(
    name="leaky_relu_regression",
    shapes={"X": ("N", "D"), "W": ("D", "M"), "Y": ("N", "M")},
    forward=forward,
    gradients=gradients,
    kinks=lambda xp, X, W, Y: [X @ W],
)
