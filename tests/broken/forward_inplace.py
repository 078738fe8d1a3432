# expect: forward modified its input w in place
# exit: 1
import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}

def sneaky(xp, X, w):
    w[...] = 0
    return xp.sum(X)


D = Derivation(name="forward_inplace", shapes=SHAPES, forward=sneaky, gradients=gradients)
