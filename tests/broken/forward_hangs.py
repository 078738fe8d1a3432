# expect: timed out after
# exit: 3
import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}

def hang(xp, X, w):
    while True:
        pass


D = Derivation(name="forward_hangs", shapes=SHAPES, forward=hang, gradients=gradients)
