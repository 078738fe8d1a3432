# expect: user code ended the worker process (exit code 0
# exit: 3
import os

import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}


def forward(xp, X, w):
    os._exit(0)


D = Derivation(name="forward_os_exit", shapes=SHAPES, forward=forward, gradients=gradients)
