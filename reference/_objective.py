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

from ._global_rng import user_call
from ._torch import Deferred

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)

__all__ = ["ForwardError", "check_output", "forward_unit", "np_xp", "objective", "read_as_scalar", "seen_shape"]


class ForwardError(RuntimeError):
    """The forward misbehaved (raised, wrong shape, non-numeric result); the message says how."""


def objective(derivation: Derivation, xp: Any, params: Mapping[str, Any], grad_output: Any = None) -> Any:
    """Evaluate the scalar objective of ``derivation`` with namespace ``xp``. A layer's output is checked
    against ``grad_output``, which has the declared output shape (``check_output``). A tensor that autograd
    differentiates is handed to the forward as a copy in its graph (``clone``), so that a forward that writes into
    its input is differentiated at the intended point instead of refused by torch (a leaf written in place)."""
    if xp is not np_xp:
        params = {k: v.clone() if isinstance(v, torch.Tensor) and v.requires_grad else v for k, v in params.items()}
    out = user_call(derivation.forward, xp, **params)  # the global generators seeded first (_global_rng.py)
    if derivation.is_layer:
        if grad_output is None:
            raise ValueError("a layer derivation needs grad_output")
        check_output(derivation, out, tuple(np.shape(grad_output)))
        return xp.sum(grad_output * out)
    shape = getattr(out, "shape", None)
    return xp.reshape(out, ()) if read_as_scalar(derivation, () if shape is None else tuple(shape)) else out


#: Forwards (by derivation name and the code of the user's function) found returning an array of more than one
#: entry where a scalar is due: the size-1 array such a forward gives at small sizes (X @ w at N=1) is a vector of
#: length 1, never read as the scalar loss.
_VECTORS: set[tuple[str, Any]] = set()


def _key(derivation: Derivation) -> tuple[str, Any]:
    fn = getattr(derivation.forward, "fn", derivation.forward)  # a bound derivation's forward calls the user's function
    return derivation.name, getattr(fn, "__code__", None) or id(fn)


def read_as_scalar(derivation: Derivation, shape: tuple[int, ...]) -> bool:
    """Whether a forward value of ``shape`` is read as the scalar it holds: a size-1 array, (1,) or (1, 1), returned
    by a derivation that is not a layer (its gradients take no grad_output) and whose forward was not found to give
    more than one entry at larger sizes (``seen_shape``). Every witness reads it so, through ``objective``; under
    vmap ``shape`` is one row's."""
    return not derivation.is_layer and len(shape) > 0 and all(n == 1 for n in shape) and _key(derivation) not in _VECTORS


def seen_shape(derivation: Derivation, shape: tuple[int, ...]) -> None:
    """Record the shape of the forward's value at larger sizes than a point's (checks/search/points.py): more than
    one entry there, and its size-1 value at the point is no scalar loss but a vector that happens to have length 1."""
    if not derivation.is_layer and int(np.prod(shape)) > 1:
        _VECTORS.add(_key(derivation))


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
    if type(value) in (np.ndarray, np.float64) and value.dtype == np.float64 and value.ndim == 0:
        return float(value)  # the usual value, which every test below passes: read at once
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


def forward_unit(derivation: Derivation, params: Mapping[str, Any], grad_output: Any = None) -> float:
    """The unit roundoff of the precision a NumPy forward computes in, read off the dtype of what it returns
    (a float32 output, ``np.empty(..., dtype='f')``, carries float32's rounding whatever the inputs were);
    float64's for a float64, integer or unreadable value. The value itself is judged elsewhere."""
    try:
        with np.errstate(all="ignore"):
            out = user_call(derivation.forward, np_xp, **{k: np.array(v, copy=True) for k, v in params.items()})  # copies, seeded
    except Exception:  # user code: the checks that call it run the forward again and say why it fails
        return float(np.finfo(np.float64).eps) / 2
    dtype = np.asarray(out).dtype
    coarse = dtype.kind == "f" and dtype.itemsize < 8
    return float(np.finfo(dtype if coarse else np.float64).eps) / 2
