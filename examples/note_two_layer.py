"""The seed note's two-layer sigmoid network, derived as the note writes it: backprop as a chain of steps.

    h         = X W1                 X:(N, D_in), W1:(D_in, H)
    h_sigmoid = σ(h)                 (N, H)
    Y_pred    = h_sigmoid W2         W2:(H, D_out)
    f         = ‖Y − Y_pred‖²_F      Y:(N, D_out), the data (its gradient is not part of the note)

The note makes two slips, kept here as two derivations, each with one of them:

* ``note_sign``:    ∂f/∂Y_pred = 2 (Y − Y_pred), a sign slip every later step inherits (∂f/∂W2, ∂f/∂W1, ∂f/∂X);
* ``note_sigmoid``: ∂f/∂W1 = Xᵀ ∂f/∂h_sigmoid, the sigmoid's derivative skipped.

``note_right`` is the chain without either. Check them and see each failing gradient point at its line::

    verigrad check examples/note_two_layer.py
"""

import numpy as np

from verigrad import Derivation


def forward(xp, X, W1, W2, Y):
    h = X @ W1
    h_sigmoid = 1.0 / (1.0 + xp.exp(-h))
    Y_pred = h_sigmoid @ W2
    return xp.sum((Y - Y_pred) ** 2)


def gradients_sign(X, W1, W2, Y):
    h = X @ W1
    h_sigmoid = 1.0 / (1.0 + np.exp(-h))
    Y_pred = h_sigmoid @ W2
    grad_Y_pred = 2.0 * (Y - Y_pred)
    grad_W2 = h_sigmoid.T @ grad_Y_pred
    grad_h_sigmoid = grad_Y_pred @ W2.T
    grad_h = grad_h_sigmoid * h_sigmoid * (1.0 - h_sigmoid)
    grad_W1 = X.T @ grad_h
    grad_X = grad_h @ W1.T
    return {"X": grad_X, "W1": grad_W1, "W2": grad_W2}


def gradients_sigmoid(X, W1, W2, Y):
    h = X @ W1
    h_sigmoid = 1.0 / (1.0 + np.exp(-h))
    Y_pred = h_sigmoid @ W2
    grad_Y_pred = 2.0 * (Y_pred - Y)
    grad_W2 = h_sigmoid.T @ grad_Y_pred
    grad_h_sigmoid = grad_Y_pred @ W2.T
    grad_h = grad_h_sigmoid * h_sigmoid * (1.0 - h_sigmoid)
    grad_W1 = X.T @ grad_h_sigmoid
    grad_X = grad_h @ W1.T
    return {"X": grad_X, "W1": grad_W1, "W2": grad_W2}


def gradients_right(X, W1, W2, Y):
    h = X @ W1
    h_sigmoid = 1.0 / (1.0 + np.exp(-h))
    Y_pred = h_sigmoid @ W2
    grad_Y_pred = 2.0 * (Y_pred - Y)
    grad_W2 = h_sigmoid.T @ grad_Y_pred
    grad_h_sigmoid = grad_Y_pred @ W2.T
    grad_h = grad_h_sigmoid * h_sigmoid * (1.0 - h_sigmoid)
    grad_W1 = X.T @ grad_h
    grad_X = grad_h @ W1.T
    return {"X": grad_X, "W1": grad_W1, "W2": grad_W2}


SHAPES = {"X": ("N", "D_in"), "W1": ("D_in", "H"), "W2": ("H", "D_out"), "Y": ("N", "D_out")}
CHECKED = ("X", "W1", "W2")

note_sign = Derivation(name="note_sign", shapes=SHAPES, forward=forward, gradients=gradients_sign, check=CHECKED)
note_sigmoid = Derivation(name="note_sigmoid", shapes=SHAPES, forward=forward, gradients=gradients_sigmoid, check=CHECKED)
note_right = Derivation(name="note_right", shapes=SHAPES, forward=forward, gradients=gradients_right, check=CHECKED)
