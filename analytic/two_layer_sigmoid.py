"""Two-layer sigmoid network with biases, squared Frobenius loss.

Objective (glossary: ``analytic/__init__.py``); biases broadcast over the batch::

    h      = X W1 + 1 b1ᵀ           X:(N, D_in), W1:(D_in, H), b1:(H,), h:(N, H)
    s      = σ(h) = 1 / (1 + e^−h)  s:(N, H)
    Y_pred = s W2 + 1 b2ᵀ           W2:(H, D_out), b2:(D_out,), Y_pred:(N, D_out)
    f      = ‖Y − Y_pred‖²_F        Y:(N, D_out)

Gradients, with σ'(h) = s ⊙ (1 − s)::

    ∂f/∂Y_pred = 2 (Y_pred − Y)                   (N, D_out)
    ∂f/∂W2     = sᵀ (∂f/∂Y_pred)                  (H, N)(N, D_out) → (H, D_out)
    ∂f/∂b2     = 1ᵀ (∂f/∂Y_pred)                  sum over the batch → (D_out,)
    ∂f/∂s      = (∂f/∂Y_pred) W2ᵀ                 (N, H)
    ∂f/∂h      = (∂f/∂s) ⊙ s ⊙ (1 − s)            (N, H)
    ∂f/∂W1     = Xᵀ (∂f/∂h)                       (D_in, H)
    ∂f/∂b1     = 1ᵀ (∂f/∂h)                       sum over the batch → (H,)
    ∂f/∂X      = (∂f/∂h) W1ᵀ                      (N, D_in)
    ∂f/∂Y      = −2 (Y_pred − Y)                  (N, D_out)
"""

import numpy as np

from ._contract import Derivation

SHAPES = {
    "X": ("N", "D_in"),
    "W1": ("D_in", "H"),
    "b1": ("H",),
    "W2": ("H", "D_out"),
    "b2": ("D_out",),
    "Y": ("N", "D_out"),
}


def predict(xp, X, W1, b1, W2, b2):
    s = 1.0 / (1.0 + xp.exp(-(X @ W1 + b1)))
    return s @ W2 + b2


def forward(xp, X, W1, b1, W2, b2, Y):
    return xp.sum((Y - predict(xp, X, W1, b1, W2, b2)) ** 2)


def backprop(dy, X, W1, b1, W2):
    """Gradients of every parameter but Y, given ∂f/∂Y_pred = dy."""
    s = 1.0 / (1.0 + np.exp(-(X @ W1 + b1)))
    dh = (dy @ W2.T) * s * (1.0 - s)
    return {"W1": X.T @ dh, "b1": dh.sum(axis=0), "W2": s.T @ dy, "b2": dy.sum(axis=0), "X": dh @ W1.T}


def gradients(X, W1, b1, W2, b2, Y):
    dy = 2.0 * (predict(np, X, W1, b1, W2, b2) - Y)
    return {**backprop(dy, X, W1, b1, W2), "Y": -dy}


DERIVATION = Derivation(name="two_layer_sigmoid", shapes=SHAPES, forward=forward, gradients=gradients)
