# expect: dtype int64
# exit: 3
import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}

D = Derivation(name="forward_integer", shapes=SHAPES, forward=lambda xp, X, w: xp.sum(xp.astype(X > 0, xp.int64)), gradients=gradients)
