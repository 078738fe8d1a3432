"""Row-wise softmax: a layer derivation, checked through its vector-Jacobian product.

Forward (glossary: ``analytic/__init__.py``); subtracting the row max m leaves S unchanged and keeps
every exponent ≤ 0, so exp cannot overflow::

    m = max_c Z[:, c]               Z:(N, C), m:(N,)
    E = exp(Z − m 1ᵀ)               E:(N, C)
    S = E / (E 1) 1ᵀ                each row of S sums to 1, S:(N, C)
    f = ⟨G, S⟩ = Σ G ⊙ S            G = grad_output:(N, C)

Gradient: row n's Jacobian is ∂S[n, i]/∂Z[n, j] = S[n, i] ([i = j] − S[n, j]), rows independent, so::

    r     = (G ⊙ S) 1               rowsum(G ⊙ S), r:(N,)
    ∂f/∂Z = S ⊙ (G − r 1ᵀ)          (N, C)
"""

import numpy as np

from ._contract import Derivation


def softmax_rows(xp, Z):
    E = xp.exp(Z - xp.max(Z, axis=1, keepdims=True))
    return E / xp.sum(E, axis=1, keepdims=True)


def forward(xp, Z):
    return softmax_rows(xp, Z)


def gradients(Z, grad_output):
    S = softmax_rows(np, Z)
    G = grad_output
    return {"Z": S * (G - (G * S).sum(axis=1, keepdims=True))}


DERIVATION = Derivation(name="softmax", shapes={"Z": ("N", "C")}, output=("N", "C"), forward=forward, gradients=gradients)
