"""One step of an LSTM cell, with two outputs (the next hidden and cell states): a layer derivation.

The four gates' weights are stacked side by side, so the weight matrices have 4H columns (a size
written as the expression ``"4*H"``). Forward (glossary: ``analytic/__init__.py``), σ the logistic::

    x:(N, D)   h₀ = prev_h:(N, H)   c₀ = prev_c:(N, H)   Wx:(D, 4H)   Wh:(H, 4H)   b:(4H,)
    A  = x Wx + h₀ Wh + 1 bᵀ                          A:(N, 4H) = [A_i | A_f | A_o | A_g], each (N, H)
    i  = σ(A_i)   f = σ(A_f)   o = σ(A_o)   g = tanh(A_g)
    c₁ = f ⊙ c₀ + i ⊙ g                               next_c:(N, H)
    h₁ = o ⊙ tanh(c₁)                                 next_h:(N, H)
    f  = ⟨G_h, h₁⟩ + ⟨G_c, c₁⟩                        grad_output = (G_h, G_c), both (N, H)

Gradients. c₁ reaches f directly and through h₁, so its total upstream gradient is::

    ∂f/∂c₁ = G_c + G_h ⊙ o ⊙ (1 − tanh²(c₁)) =: Γ      (N, H)
    ∂f/∂o  = G_h ⊙ tanh(c₁)     ∂f/∂f = Γ ⊙ c₀     ∂f/∂i = Γ ⊙ g     ∂f/∂g = Γ ⊙ i
    ∂f/∂A  = [∂f/∂i ⊙ i(1−i) | ∂f/∂f ⊙ f(1−f) | ∂f/∂o ⊙ o(1−o) | ∂f/∂g ⊙ (1−g²)] =: Δ    (N, 4H)
    ∂f/∂c₀ = Γ ⊙ f                                    (N, H)
    ∂f/∂x  = Δ Wxᵀ   ∂f/∂h₀ = Δ Whᵀ                   (N, D), (N, H)
    ∂f/∂Wx = xᵀ Δ    ∂f/∂Wh = h₀ᵀ Δ   ∂f/∂b = 1ᵀ Δ     (D, 4H), (H, 4H), (4H,)
"""

import numpy as np

from ._contract import Derivation


def gates(xp, A, H):
    sig = lambda z: 1.0 / (1.0 + xp.exp(-z))
    return sig(A[:, :H]), sig(A[:, H : 2 * H]), sig(A[:, 2 * H : 3 * H]), xp.tanh(A[:, 3 * H :])


def forward(xp, x, prev_h, prev_c, Wx, Wh, b):
    i, f, o, g = gates(xp, x @ Wx + prev_h @ Wh + b, prev_h.shape[1])
    next_c = f * prev_c + i * g
    return o * xp.tanh(next_c), next_c


def gradients(x, prev_h, prev_c, Wx, Wh, b, grad_output):
    G_h, G_c = grad_output
    i, f, o, g = gates(np, x @ Wx + prev_h @ Wh + b, prev_h.shape[1])
    t = np.tanh(f * prev_c + i * g)
    Gamma = G_c + G_h * o * (1.0 - t * t)
    Delta = np.concatenate([Gamma * g * i * (1 - i), Gamma * prev_c * f * (1 - f), G_h * t * o * (1 - o), Gamma * i * (1 - g * g)], axis=1)
    return {
        "x": Delta @ Wx.T,
        "prev_h": Delta @ Wh.T,
        "prev_c": Gamma * f,
        "Wx": x.T @ Delta,
        "Wh": prev_h.T @ Delta,
        "b": Delta.sum(axis=0),
    }


DERIVATION = Derivation(
    name="lstm_step",
    shapes={"x": ("N", "D"), "prev_h": ("N", "H"), "prev_c": ("N", "H"), "Wx": ("D", "4*H"), "Wh": ("H", "4*H"), "b": ("4*H",)},
    output=(("N", "H"), ("N", "H")),
    dims={"N": (1, 3), "D": (1, 3), "H": (1, 3)},
    forward=forward,
    gradients=gradients,
)
