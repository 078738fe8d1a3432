# expect: would need about
# exit: 3
import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}

D = Derivation(
    name="huge_dims",
    shapes={"X": ("N", "N", "N")},
    dims={"N": (1, 10**6)},
    forward=lambda xp, X: xp.sum(X),
    gradients=lambda X: {"X": np.ones_like(X)},
)
