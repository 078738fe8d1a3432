# expect: not deterministic
# exit: 3
import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}

def dropout(xp, X, w):
    keep = np.random.default_rng().random(X.shape) > 0.5
    return xp.sum((X * xp.asarray(keep, dtype=X.dtype) @ w) ** 2)


D = Derivation(name="forward_random", shapes=SHAPES, forward=dropout, gradients=gradients)
