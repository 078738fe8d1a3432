# expect: gradients modified their input X in place
# exit: 0
import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}

def sneaky(X, w):
    out = gradients(X, w)
    X *= 2
    return out


D = Derivation(name="gradients_inplace", shapes=SHAPES, forward=forward, gradients=sneaky)
