"""The scalar objective every witness differentiates, in NumPy or torch.

For a scalar derivation it is the forward itself; for a layer it is f = Σ G ⊙ forward(...), whose
gradient is the vector-Jacobian product the layer's hand-derived backward returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import array_api_compat.numpy as np_xp
import array_api_compat.torch as torch_xp
import numpy as np
import torch

from verigrad.analytic import Derivation

__all__ = ["ForwardError", "np_xp", "objective", "torch_xp"]


class ForwardError(RuntimeError):
    """The forward misbehaved (raised, wrong shape, non-numeric result); the message says how."""


def objective(derivation: Derivation, xp: Any, params: Mapping[str, Any], grad_output: Any = None) -> Any:
    """Evaluate the scalar objective of ``derivation`` with namespace ``xp`` (no checks beyond shape)."""
    out = derivation.forward(xp, **params)
    if derivation.is_layer:
        if grad_output is None:
            raise ValueError("a layer derivation needs grad_output")
        return xp.sum(grad_output * out)
    return out


def check_scalar(derivation: Derivation, value: Any) -> float:
    """The forward's value as a float, or ForwardError saying why it is not a usable scalar."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ForwardError(f"forward returned {type(value).__name__}, not a number")
    if arr.size != 1 or arr.ndim > 1 or (arr.ndim == 1 and not derivation.is_layer):
        what = "layer objective" if derivation.is_layer else "forward"
        raise ForwardError(f"{what} returned an array of shape {arr.shape}, expected a scalar")
    if np.iscomplexobj(arr):
        raise ForwardError("forward returned a complex value; only real objectives are supported")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ForwardError(f"forward returned a value of dtype {arr.dtype}; the objective must be floating point")
    return float(arr.reshape(()))
