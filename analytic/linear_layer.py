"""Linear (affine) layer: a layer derivation, checked through its vector-Jacobian products.

Forward (glossary: ``analytic/__init__.py``); the bias broadcasts over the batch::

    Y = X W + 1 bᵀ                  X:(N, D_in), W:(D_in, D_out), b:(D_out,), Y:(N, D_out)
    f = ⟨G, Y⟩ = Σ G ⊙ Y            G = grad_output:(N, D_out)

Gradients (∂f/∂Y = G)::

    ∂f/∂X = G Wᵀ                    (N, D_out)(D_out, D_in) → (N, D_in)
    ∂f/∂W = Xᵀ G                    (D_in, N)(N, D_out) → (D_in, D_out)
    ∂f/∂b = 1ᵀ G                    sum over the batch → (D_out,)
"""

from ._contract import Derivation


def forward(xp, X, W, b):
    return X @ W + b


def gradients(X, W, b, grad_output):
    G = grad_output
    return {"X": G @ W.T, "W": X.T @ G, "b": G.sum(axis=0)}


DERIVATION = Derivation(
    name="linear_layer",
    shapes={"X": ("N", "D_in"), "W": ("D_in", "D_out"), "b": ("D_out",)},
    output=("N", "D_out"),
    forward=forward,
    gradients=gradients,
)
