"""A deliberately wrong derivation, to show what a failing report looks like.

Run it with ``verigrad check docs/example_wrong.py`` (add ``--markdown``, ``--junit``, ``--html``
for the other reports). Same network as the built-in ``two_layer_relu`` (glossary:
``analytic/__init__.py``)::

    h = X W1,  a = max(h, 0),  Y_pred = a W2,  f = ‖Y − Y_pred‖²_F
    X:(N, D_in), W1:(D_in, H), W2:(H, D_out), Y:(N, D_out)

With the residual r = Y − Y_pred (N, D_out), ∂f/∂Y_pred = −2 r, so::

    ∂f/∂W2 = aᵀ (∂f/∂Y_pred) = −2 aᵀ r          (H, N)(N, D_out) → (H, D_out)

The slip: ``gradients`` below writes ∂f/∂W2 = +2 aᵀ r, the sign lost when the residual was
written as Y − Y_pred in one place and as Y_pred − Y in another. Every other gradient is right.
"""

import numpy as np

from verigrad import Derivation


def forward(xp, X, W1, W2, Y):
    h = X @ W1
    y_pred = (h * (h > 0)) @ W2
    return xp.sum((Y - y_pred) ** 2)


def gradients(X, W1, W2, Y):
    h = X @ W1
    a = np.maximum(h, 0.0)
    r = Y - a @ W2
    dy = -2.0 * r  # ∂f/∂Y_pred
    dh = (dy @ W2.T) * (h > 0)
    return {
        "W1": X.T @ dh,
        "W2": 2.0 * a.T @ r,  # wrong: should be a.T @ dy = −2 aᵀ r
        "X": dh @ W1.T,
        "Y": 2.0 * r,
    }


WRONG_SIGN = Derivation(
    name="two_layer_relu_wrong_sign",
    shapes={"X": ("N", "D_in"), "W1": ("D_in", "H"), "W2": ("H", "D_out"), "Y": ("N", "D_out")},
    forward=forward,
    gradients=gradients,
    kinks=lambda xp, X, W1, W2, Y: [X @ W1],
)
