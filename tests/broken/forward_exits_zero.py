# expect: user code raised SystemExit: 0
# exit: 3
import sys

import numpy as np

from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "w": ("D",)}


def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}


def forward(xp, X, w):
    sys.exit(0)


D = Derivation(name="forward_exits_zero", shapes=SHAPES, forward=forward, gradients=gradients)
