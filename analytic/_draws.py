"""Parameters drawn through a transform: positive values, SPD matrices, simplex rows, orthogonal matrices.

``Derivation(draws={"S": spd(), "w": positive(), "P": simplex(), "Q": orthogonal()})``: such a parameter is
drawn like any other (a standard normal array ``z`` of its shape, shrunk with the sizes) and handed to the
forward and the gradients as ``T(z)``, a point of the constrained set:

    positive()        T(z) = exp(z)                                   any shape
    spd(eps=1.0)      T(z) = z zᵀ + eps·I                              (…, n, n)
    simplex()         T(z) = softmax(z) along the last axis            rows on the probability simplex
    orthogonal()      T(z) = (I − K)⁻¹ (I + K), K = (z − zᵀ)/2         (…, n, n), the Cayley transform

The witnesses differentiate f(T(z)) with respect to ``z``: every perturbation stays in the set (a finite
difference of an SPD matrix stays symmetric and positive definite). The user's gradient ∂f/∂S is carried to
``z`` by the transform's vector-Jacobian product, computed here by torch autograd on ``T`` alone, so the
chain rule through the transform is never asked of the user; a wrong ∂f/∂S gives a wrong ∂f/∂z in the same
way (a sign, a factor, a missing term). For a symmetric S only the symmetric part of ∂f/∂S matters:
⟨G, dS⟩ with dS symmetric sees G + Gᵀ alone. Reports give the entries of ``z``; ``check(d, at=...)``
takes ``z`` for such a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._validate import DerivationError, Shape

__all__ = ["Draw", "carried_gradient", "orthogonal", "positive", "simplex", "spd", "wrap_draws"]


@dataclass(frozen=True)
class Draw:
    """A transform of a parameter's unconstrained draw: ``kind`` names it, ``eps`` is spd's shift."""

    kind: str
    eps: float = 1.0

    def apply(self, xp: Any, z: Any) -> Any:
        if self.kind == "positive":
            return xp.exp(z)
        if self.kind == "simplex":
            e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
            return e / xp.sum(e, axis=-1, keepdims=True)
        eye = xp.eye(z.shape[-1], dtype=z.dtype)
        if self.kind == "spd":
            return z @ z.mT + self.eps * eye
        k = (z - z.mT) / 2.0
        return xp.linalg.solve(eye - k, eye + k)

    def formula(self, name: str) -> str:
        return {
            "positive": f"{name} = exp(z)",
            "simplex": f"{name} = softmax(z) along the last axis",
            "spd": f"{name} = z·zᵀ + {self.eps:g}·I",
            "orthogonal": f"{name} = (I − K)⁻¹(I + K), K = (z − zᵀ)/2",
        }[self.kind]


def positive() -> Draw:
    """exp(z): positive values (a log's argument, a scale, a variance)."""
    return Draw("positive")


def spd(eps: float = 1.0) -> Draw:
    """z zᵀ + eps·I: a symmetric positive-definite matrix (cholesky, solve, a covariance)."""
    if not eps > 0:
        raise ValueError("spd(eps): eps must be > 0")
    return Draw("spd", float(eps))


def simplex() -> Draw:
    """softmax(z) along the last axis: rows of probabilities."""
    return Draw("simplex")


def orthogonal() -> Draw:
    """The Cayley transform of z's skew part: an orthogonal matrix (with no eigenvalue −1)."""
    return Draw("orthogonal")


SQUARE = ("spd", "orthogonal")


def check_draws(name: str, draws: Mapping[str, Any], shapes: Mapping[str, Shape]) -> dict[str, Draw]:
    """``draws=`` checked against the parameters: a Draw per parameter, square last axes for spd/orthogonal."""
    if not isinstance(draws, Mapping):
        raise DerivationError(name, "draws must be a dict {param: positive() | spd() | simplex() | orthogonal()}")
    out = {}
    for param, draw in draws.items():
        if param not in shapes:
            raise DerivationError(name, f"draws names {param!r}, which is not a parameter (shapes: {', '.join(shapes)})")
        if not isinstance(draw, Draw):
            raise DerivationError(name, f"draws[{param!r}] is {draw!r}; use positive(), spd(), simplex() or orthogonal()")
        shape = tuple(shapes[param])
        if draw.kind in SQUARE and (len(shape) < 2 or shape[-1] != shape[-2]):
            raise DerivationError(name, f"draws[{param!r}] = {draw.kind}() needs a square matrix, (…, n, n); {param} has shape {shape}")
        if draw.kind == "simplex" and not shape:
            raise DerivationError(name, f"draws[{param!r}] = simplex() needs at least one axis; {param} is a scalar")
        out[param] = draw
    return out


def carried_gradient(draw: Draw, z: Any, g: Any) -> Any:
    """∂⟨g, T(z)⟩/∂z by torch autograd on the transform alone; ``g`` unchanged when it is not an array of
    T(z)'s shape (the verdict then reports the shape the gradients returned)."""
    import array_api_compat.torch as torch_xp
    import numpy as np
    import torch

    g_arr = np.asarray(g) if g is not None else None
    if g_arr is None or g_arr.shape != np.shape(z) or g_arr.dtype.kind not in "fiu":
        return g
    zt = torch.tensor(np.asarray(z, dtype=np.float64), requires_grad=True)
    (out,) = torch.autograd.grad(draw.apply(torch_xp, zt), zt, torch.as_tensor(g_arr, dtype=torch.float64))
    return out.numpy()


def wrap_draws(draws: Mapping[str, Draw], forward: Callable[..., Any], gradients: Callable[..., Any], kinks: Callable[..., Any] | None) -> tuple:
    """(forward, gradients, kinks) of z: each drawn parameter transformed before the user's function sees it,
    and the user's ∂f/∂T(z) carried back to z."""
    from ._outputs import standing_for

    def transformed(xp: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (draws[k].apply(xp, v) if k in draws else v) for k, v in kwargs.items()}

    def forward_z(xp: Any, **kwargs: Any) -> Any:
        return forward(xp, **transformed(xp, kwargs))

    def gradients_z(**kwargs: Any) -> Any:
        import array_api_compat.numpy as np_xp

        grads = gradients(**transformed(np_xp, kwargs))
        if not isinstance(grads, Mapping):
            return grads
        return {k: (carried_gradient(draws[k], kwargs[k], g) if k in draws and k in kwargs else g) for k, g in grads.items()}

    def kinks_z(xp: Any, **kwargs: Any) -> Any:
        return kinks(xp, **transformed(xp, kwargs))

    wrapped_kinks = None if kinks is None else standing_for(kinks_z, kinks)
    return standing_for(forward_z, forward), standing_for(gradients_z, gradients), wrapped_kinks
