"""Softmax cross-entropy with integer class labels, mean over the batch (scalar objective).

The labels y are data: drawn per point as integers in [0, C), shrunk and shown in every report, but
never differentiated (there is no ∂f/∂y). Objective (glossary: ``analytic/__init__.py``); log-softmax by
a stable log-sum-exp with the row max m::

    m = max_c Z[:, c]                     Z:(N, C), m:(N,)
    L = Z − (m + log(exp(Z − m 1ᵀ) 1)) 1ᵀ  log-softmax, L:(N, C)
    S = exp(L)                            softmax, S:(N, C)
    f = −(1/N) Σ_n L[n, y_n]              y:(N,) integers in [0, C)

With the one-hot rows E[n, c] = [c = y_n], f = −(1/N) Σ E ⊙ L and each row of S sums to 1, so::

    ∂f/∂Z = (1/N) (S − E)                 (N, C): subtract 1 at each row's label only
"""

import numpy as np

from ._contract import Derivation
from ._data import integers


def log_softmax(xp, Z):
    m = xp.max(Z, axis=1, keepdims=True)
    return Z - m - xp.log(xp.sum(xp.exp(Z - m), axis=1, keepdims=True))


def forward(xp, Z, y):
    picked = xp.take_along_axis(log_softmax(xp, Z), xp.reshape(y, (-1, 1)), axis=1)
    return -xp.sum(picked) / Z.shape[0]


def gradients(Z, y):
    n = Z.shape[0]
    dZ = np.exp(log_softmax(np, Z))
    dZ[np.arange(n), y] -= 1.0
    return {"Z": dZ / n}


DERIVATION = Derivation(
    name="softmax_cross_entropy_labels",
    shapes={"Z": ("N", "C")},
    data={"y": integers(0, "C", shape=("N",))},
    forward=forward,
    gradients=gradients,
)
