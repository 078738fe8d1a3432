"""Two-layer ReLU network, no biases, squared Frobenius loss.

Objective (glossary: ``analytic/__init__.py``)::

    h      = X W1                   X:(N, D_in), W1:(D_in, H), h:(N, H)
    a      = max(h, 0)              a:(N, H)
    Y_pred = a W2                   W2:(H, D_out), Y_pred:(N, D_out)
    f      = ‖Y − Y_pred‖²_F        Y:(N, D_out)

Gradients, with m = [h > 0] (N, H) (ReLU'(0) = 0)::

    ∂f/∂Y_pred = 2 (Y_pred − Y)                   (N, D_out)
    ∂f/∂W2     = aᵀ (∂f/∂Y_pred)                  (H, N)(N, D_out) → (H, D_out)
    ∂f/∂a      = (∂f/∂Y_pred) W2ᵀ                 (N, D_out)(D_out, H) → (N, H)
    ∂f/∂h      = (∂f/∂a) ⊙ m                      (N, H)
    ∂f/∂W1     = Xᵀ (∂f/∂h)                       (D_in, N)(N, H) → (D_in, H)
    ∂f/∂X      = (∂f/∂h) W1ᵀ                      (N, H)(H, D_in) → (N, D_in)
    ∂f/∂Y      = −2 (Y_pred − Y)                  (N, D_out)
"""

import numpy as np

from ._contract import Derivation


def forward(xp, X, W1, W2, Y):
    h = X @ W1
    y_pred = (h * (h > 0)) @ W2
    return xp.sum((Y - y_pred) ** 2)


def gradients(X, W1, W2, Y):
    h = X @ W1
    a = np.maximum(h, 0.0)
    dy = 2.0 * (a @ W2 - Y)
    dh = (dy @ W2.T) * (h > 0)
    return {"W1": X.T @ dh, "W2": a.T @ dy, "X": dh @ W1.T, "Y": -dy}


DERIVATION = Derivation(
    name="two_layer_relu",
    shapes={"X": ("N", "D_in"), "W1": ("D_in", "H"), "W2": ("H", "D_out"), "Y": ("N", "D_out")},
    forward=forward,
    gradients=gradients,
    kinks=lambda xp, X, W1, W2, Y: [X @ W1],
)
