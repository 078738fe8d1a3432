"""The scalar objective every witness differentiates, in NumPy or torch.

For a scalar derivation it is the forward itself; for a layer it is f = Σ G ⊙ forward(...), whose
gradient is the vector-Jacobian product the layer's hand-derived backward returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import array_api_compat.numpy as np_xp
import numpy as np

from verigrad.analytic import Derivation

from ._torch import Deferred

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)

__all__ = ["ForwardError", "check_output", "np_xp", "objective"]


class ForwardError(RuntimeError):
    """The forward misbehaved (raised, wrong shape, non-numeric result); the message says how."""


def objective(derivation: Derivation, xp: Any, params: Mapping[str, Any], grad_output: Any = None) -> Any:
    """Evaluate the scalar objective of ``derivation`` with namespace ``xp``. A layer's output is checked
    against ``grad_output``, which has the declared output shape (``check_output``)."""
    out = derivation.forward(xp, **params)
    if derivation.is_layer:
        if grad_output is None:
            raise ValueError("a layer derivation needs grad_output")
        check_output(derivation, out, tuple(np.shape(grad_output)))
        return xp.sum(grad_output * out)
    return out


def check_output(derivation: Derivation, out: Any, expected: tuple[int, ...]) -> None:
    """ForwardError unless a layer's output has the declared shape and a real floating dtype.

    Without it Σ G ⊙ out broadcasts a transposed or scalar output into some scalar, and its gradient,
    not the one the hand-derived backward computes, would be blamed on the analytic side. Only the
    shape and dtype are read (no values), so it holds under vmap, where both are those of one row.
    """
    shape = getattr(out, "shape", None)
    if shape is None:
        shape = np.shape(out)
    if tuple(shape) != expected:
        declared = f"output={derivation.output!r}" if derivation.output is not None else "the shape it returned where the point was drawn"
        raise ForwardError(f"forward returned an array of shape {tuple(shape)}, expected {expected} ({declared})")
    if isinstance(out, torch.Tensor):
        if not out.is_floating_point():
            raise ForwardError(f"forward returned an output of dtype {out.dtype}; a layer's output must be real floating point")
        return
    dtype = np.asarray(out).dtype
    if dtype.kind != "f":
        raise ForwardError(f"forward returned an output of dtype {dtype}; a layer's output must be real floating point")


def check_scalar(derivation: Derivation, value: Any) -> float:
    """The forward's value as a float, or ForwardError saying why it is not a usable scalar."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ForwardError(f"forward returned {type(value).__name__}, not a number")
    if arr.size != 1 or arr.ndim > 1 or (arr.ndim == 1 and not derivation.is_layer):
        if derivation.is_layer:
            raise ForwardError(f"layer objective returned an array of shape {arr.shape}, expected a scalar")
        raise ForwardError(
            f"forward returned an array of shape {arr.shape}, expected a scalar; for a layer (an array output),"
            " the gradients take grad_output (output= may declare its shape)"
        )
    if np.iscomplexobj(arr):
        raise ForwardError("forward returned a complex value; only real objectives are supported")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ForwardError(f"forward returned a value of dtype {arr.dtype}; the objective must be floating point")
    return float(arr.reshape(()))
