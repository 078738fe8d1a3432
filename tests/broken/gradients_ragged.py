# expect: cannot be read as an array
# exit: 1
import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


def gradients(X, w):
    r = X @ w
    # Rows of different lengths: no array, whatever the sizes.
    return {"X": 2 * np.outer(r, w), "w": [list(2 * X.T @ r), [0.0, *(2 * X.T @ r)]]}


D = Derivation(name="gradients_ragged", shapes=SHAPES, forward=forward, gradients=gradients)
