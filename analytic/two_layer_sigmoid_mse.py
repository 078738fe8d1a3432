"""Two-layer sigmoid network with biases, mean squared error (what ``torch.nn.MSELoss()`` computes).

Objective (glossary: ``analytic/__init__.py``); the network is ``two_layer_sigmoid``'s::

    Y_pred = σ(X W1 + 1 b1ᵀ) W2 + 1 b2ᵀ          Y_pred:(N, D_out)
    f      = (1 / (N·D_out)) ‖Y_pred − Y‖²_F      mean over all N·D_out entries

Gradients: those of ``two_layer_sigmoid`` with the upstream gradient scaled by 1/(N·D_out)::

    ∂f/∂Y_pred = (2 / (N·D_out)) (Y_pred − Y)     (N, D_out)
    ∂f/∂W2 = sᵀ (∂f/∂Y_pred),  ∂f/∂b2 = 1ᵀ (∂f/∂Y_pred)
    ∂f/∂h  = ((∂f/∂Y_pred) W2ᵀ) ⊙ s ⊙ (1 − s)
    ∂f/∂W1 = Xᵀ (∂f/∂h),  ∂f/∂b1 = 1ᵀ (∂f/∂h),  ∂f/∂X = (∂f/∂h) W1ᵀ
    ∂f/∂Y  = −(2 / (N·D_out)) (Y_pred − Y)
"""

import numpy as np

from ._contract import Derivation
from .two_layer_sigmoid import SHAPES, backprop, predict


def forward(xp, X, W1, b1, W2, b2, Y):
    return xp.mean((predict(xp, X, W1, b1, W2, b2) - Y) ** 2)


def gradients(X, W1, b1, W2, b2, Y):
    dy = 2.0 * (predict(np, X, W1, b1, W2, b2) - Y) / Y.size
    return {**backprop(dy, X, W1, b1, W2), "Y": -dy}


DERIVATION = Derivation(name="two_layer_sigmoid_mse", shapes=SHAPES, forward=forward, gradients=gradients)
