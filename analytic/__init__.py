"""Hand-derived gradients: the derivation contract and the built-in derivations.

Glossary (every derivation's docstring uses these words):

* **f** — the scalar objective. For a *layer* (a forward with array output) f = ⟨G, out⟩ = Σ G ⊙ out,
  where **G** (``grad_output``) is the upstream gradient ∂L/∂out the harness draws at random; the layer's
  gradients are then the vector-Jacobian products ∂f/∂param.
* **∂f/∂P** — the gradient of f with respect to parameter P, an array of P's shape (denominator layout):
  entry [i, j] is ∂f/∂P[i, j]. The sign is that of f: a descent step is P − η ∂f/∂P.
* **Shapes** — written ``X:(N, D)``; symbolic dims (N, D, H, ...) are shared across parameters.
  ``1`` is a column of ones: ``1 b1ᵀ`` broadcasts a bias over the batch, ``1ᵀ A`` sums A over the batch.
* **⊙** — elementwise product; **[h > 0]** — the 0/1 mask where h > 0.
* **Subgradient at a kink** — ReLU'(0) = 0, the convention of ``torch.relu`` (and of ``h * (h > 0)``).
  Note: ``torch.maximum(h, 0)`` splits the gradient ½/½ at an exact tie, so write ReLU as ``h * (h > 0)``
  or ``xp.where(h > 0, h, 0.0)`` if you want torch's autograd to follow the same convention. Entries whose
  finite-difference step crosses a kink are reported ``nondifferentiable``, never failed.
"""

from ._contract import DEFAULT_DIM_RANGE, Derivation, DerivationError, resolve
from ._data import DataKind, DataSpec, booleans, fixed, integers, one_hot, one_hot_rows
from ._dims import dim_value, hyper_value, solve_sizes
from ._draws import Draw, orthogonal, positive, simplex, spd
from ._hyper import FORWARD_SEED, Setting, bind, configure, literal_text
from ._outputs import flat_grad_output
from ._registry import NAMES, builtin, builtins
from ._tree import flat_at

__all__ = [
    "DEFAULT_DIM_RANGE",
    "FORWARD_SEED",
    "NAMES",
    "DataKind",
    "DataSpec",
    "Derivation",
    "DerivationError",
    "Draw",
    "Setting",
    "bind",
    "booleans",
    "builtin",
    "builtins",
    "configure",
    "dim_value",
    "fixed",
    "flat_at",
    "flat_grad_output",
    "hyper_value",
    "integers",
    "literal_text",
    "one_hot",
    "one_hot_rows",
    "orthogonal",
    "positive",
    "resolve",
    "simplex",
    "solve_sizes",
    "spd",
]
