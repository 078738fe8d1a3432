# expect: killed by SIGSEGV
# exit: 3
import ctypes

import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}


def forward(xp, X, w):
    ctypes.string_at(0)  # reads address 0: the process is killed by SIGSEGV


D = Derivation(name="forward_segfault", shapes=SHAPES, forward=forward, gradients=gradients)
