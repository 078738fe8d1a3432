# expect: kinks raised ValueError
# exit: 3
import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}

def kinks(xp, X, w):
    raise ValueError("no kinks here")


D = Derivation(name="kinks_raise", shapes=SHAPES, forward=forward, gradients=gradients, kinks=kinks)
