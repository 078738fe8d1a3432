"""Layer normalisation over each row, with a learnable scale and shift: a layer derivation.

Forward (glossary: ``analytic/__init__.py``); ε = EPS is fixed, statistics are per row (no 1/(D−1))::

    μ     = (1/D) X 1                     X:(N, D), μ:(N,)
    Xc    = X − μ 1ᵀ                      Xc:(N, D)
    v     = (1/D) (Xc ⊙ Xc) 1             biased variance, v:(N,)
    ρ     = 1 / √(v + ε)                  ρ:(N,)
    X̂     = Xc ⊙ (ρ 1ᵀ)                   X̂:(N, D)
    Y     = X̂ ⊙ (1 γᵀ) + 1 βᵀ             γ = gamma:(D,), β = beta:(D,), Y:(N, D)
    f     = ⟨G, Y⟩ = Σ G ⊙ Y              G = grad_output:(N, D)

Gradients; X̂ is the input's only path to f, and each row depends on its own μ and v::

    ∂f/∂β = 1ᵀ G                          sum over the batch → (D,)
    ∂f/∂γ = 1ᵀ (G ⊙ X̂)                    (D,)
    ∂f/∂X̂ = G ⊙ (1 γᵀ) =: D̂               (N, D)
    ∂f/∂X = (ρ 1ᵀ) ⊙ (D̂ − (1/D)(D̂ 1) 1ᵀ − X̂ ⊙ ((1/D)((D̂ ⊙ X̂) 1) 1ᵀ))     (N, D)

(The last line is ∂X̂/∂X applied to D̂: ∂X̂[n, i]/∂X[n, j] = ρ_n ([i = j] − 1/D − X̂[n, i] X̂[n, j] / D).)
With D ≤ 2 every row of X̂ is constant (0, or ±(1, −1) up to O(ε)), so ∂f/∂X is only O(ε): a
hard case for a checker, kept in the drawn sizes on purpose.
"""

import numpy as np

from ._contract import Derivation

#: ε added to the variance; fixed, not a parameter (it is a constant of the layer, as in torch.nn.LayerNorm).
EPS = 1e-5


def normalise(xp, X):
    Xc = X - xp.mean(X, axis=1, keepdims=True)
    return Xc / xp.sqrt(xp.mean(Xc * Xc, axis=1, keepdims=True) + EPS)


def forward(xp, X, gamma, beta):
    return normalise(xp, X) * gamma + beta


def gradients(X, gamma, beta, grad_output):
    G = grad_output
    Xc = X - X.mean(axis=1, keepdims=True)
    rho = 1.0 / np.sqrt((Xc * Xc).mean(axis=1, keepdims=True) + EPS)
    Xh = Xc * rho
    Dh = G * gamma
    dX = rho * (Dh - Dh.mean(axis=1, keepdims=True) - Xh * (Dh * Xh).mean(axis=1, keepdims=True))
    return {"X": dX, "gamma": (G * Xh).sum(axis=0), "beta": G.sum(axis=0)}


DERIVATION = Derivation(
    name="layer_norm",
    shapes={"X": ("N", "D"), "gamma": ("D",), "beta": ("D",)},
    output=("N", "D"),
    forward=forward,
    gradients=gradients,
)
