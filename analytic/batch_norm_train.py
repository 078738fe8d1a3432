"""Batch normalisation in training mode, with a learnable scale and shift: a layer derivation.

Training mode normalises each feature by the statistics of the batch itself (the running averages a
test-mode layer would use play no part in the forward). Forward (glossary: ``analytic/__init__.py``);
ε = EPS is fixed, the variance is the biased one (1/N, no N − 1)::

    μ  = (1/N) 1ᵀ X                       X:(N, D), μ:(D,)
    Xc = X − 1 μᵀ                         Xc:(N, D)
    v  = (1/N) 1ᵀ (Xc ⊙ Xc)               v:(D,)
    ρ  = 1 / √(v + ε)                     ρ:(D,)
    X̂  = Xc ⊙ (1 ρᵀ)                      X̂:(N, D)
    Y  = X̂ ⊙ (1 γᵀ) + 1 βᵀ                γ = gamma:(D,), β = beta:(D,), Y:(N, D)
    f  = ⟨G, Y⟩                           G = grad_output:(N, D)

Gradients. Every row of X̂ depends on the whole batch through μ and v, so ∂f/∂X has three terms:
the direct one, the mean's and the variance's (column-wise the transpose of layer normalisation)::

    ∂f/∂β = 1ᵀ G                                               (D,)
    ∂f/∂γ = 1ᵀ (G ⊙ X̂)                                         (D,)
    ∂f/∂X̂ = G ⊙ (1 γᵀ) =: D̂                                    (N, D)
    ∂f/∂X = (1 ρᵀ) ⊙ (D̂ − (1/N) 1 (1ᵀ D̂) − X̂ ⊙ ((1/N) 1 (1ᵀ (D̂ ⊙ X̂))))      (N, D)

(∂X̂[m, d]/∂X[n, d] = ρ_d ([m = n] − 1/N − X̂[m, d] X̂[n, d] / N); features do not mix.)
With N = 1 every X̂ is 0 and ∂f/∂X = 0 exactly; with N = 2 it is O(ε): hard cases kept in the sizes.
"""

import numpy as np

from ._contract import Derivation

#: ε added to the variance; fixed, not a parameter (torch.nn.BatchNorm1d's default).
EPS = 1e-5


def forward(xp, X, gamma, beta):
    Xc = X - xp.mean(X, axis=0, keepdims=True)
    Xh = Xc / xp.sqrt(xp.mean(Xc * Xc, axis=0, keepdims=True) + EPS)
    return Xh * gamma + beta


def gradients(X, gamma, beta, grad_output):
    G = grad_output
    Xc = X - X.mean(axis=0, keepdims=True)
    rho = 1.0 / np.sqrt((Xc * Xc).mean(axis=0, keepdims=True) + EPS)
    Xh = Xc * rho
    Dh = G * gamma
    dX = rho * (Dh - Dh.mean(axis=0, keepdims=True) - Xh * (Dh * Xh).mean(axis=0, keepdims=True))
    return {"X": dX, "gamma": (G * Xh).sum(axis=0), "beta": G.sum(axis=0)}


DERIVATION = Derivation(
    name="batch_norm_train",
    shapes={"X": ("N", "D"), "gamma": ("D",), "beta": ("D",)},
    output=("N", "D"),
    forward=forward,
    gradients=gradients,
)
