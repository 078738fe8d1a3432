# expect: MemoryError
# exit: 3
import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}


def forward(xp, X, w):
    hoard = []
    while True:  # 64 MiB at a time, until the worker's memory limit stops it
        hoard.append(np.ones(2**23))


D = Derivation(name="forward_memory_hog", shapes=SHAPES, forward=forward, gradients=gradients)
