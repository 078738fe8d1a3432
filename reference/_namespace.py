"""Which array namespaces a forward runs in, and the objective evaluated in one of them.

A forward written against ``xp`` runs under NumPy and under torch, and each reference runs it where it
needs: autograd under torch, finite differences batched under torch's vmap or one NumPy call at a time.
Code written for one library only — ``np.pad``, in-place writes into NumPy arrays, ``np.add.at``,
``int(...)`` on arrays, or ``torch.nn.functional`` — runs in one. ``namespaces`` finds out which, by
running the forward once in each (under torch with its inputs requiring a gradient, so that code which
quietly converts a tensor to NumPy counts as NumPy-only), unless the derivation declares them
(``Derivation(namespaces=...)``). ``TorchObjective`` evaluates a torch-only forward's finite differences
in torch float64, without NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from verigrad.analytic import Derivation

from ._batched import BatchedObjective, forward_value, forward_value_torch
from ._objective import check_scalar, np_xp, objective
from ._torch import Deferred, torch_namespace

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)

__all__ = ["NUMPY", "TORCH", "TorchObjective", "forward_value_in", "namespaces", "runs_in", "torch_forward_unit", "torch_output_shape"]

NUMPY, TORCH = "numpy", "torch"
BOTH = (NUMPY, TORCH)

#: Forwards found to run in both namespaces, by derivation name and the forward's code: the common case is
#: tried once per process, not at every point (a derivation with data or a seed is bound anew per point).
_BOTH_FOUND: set[tuple[str, Any]] = set()


def _key(derivation: Derivation) -> tuple[str, Any]:
    return derivation.name, getattr(derivation.forward, "__code__", None) or id(derivation.forward)


def _tensors(values: Mapping[str, Any], grad: bool) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(np.array(v, dtype=np.float64), requires_grad=grad) for k, v in values.items()}


def runs_in(derivation: Derivation, namespace: str, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None) -> bool:
    """Whether the forward gives its objective in ``namespace`` at the point: under NumPy a number, under
    torch a tensor that depends on the parameters (so autograd can differentiate it)."""
    g = None if grad_output is None else np.array(grad_output, dtype=np.float64)
    try:
        if namespace == NUMPY:
            forward_value(derivation, {k: np.array(v, dtype=np.float64) for k, v in params.items()}, g)
            return True
        f = objective(derivation, torch_namespace(), _tensors(params, True), None if g is None else torch.from_numpy(g))
        return isinstance(f, torch.Tensor) and f.requires_grad and f.is_floating_point()
    except Exception:  # user code: the forward does not run in that namespace
        return False


def namespaces(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None) -> tuple[str, ...]:
    """The namespaces the forward runs in: as the derivation declares, else found out at this point. A
    forward that runs in neither gives both: the check then reports why it fails."""
    if derivation.namespaces is not None:
        return tuple(derivation.namespaces)
    if _key(derivation) in _BOTH_FOUND:
        return BOTH
    found = tuple(ns for ns in BOTH if runs_in(derivation, ns, params, grad_output))
    if found == BOTH:
        _BOTH_FOUND.add(_key(derivation))
    return found or BOTH


def forward_value_in(derivation: Derivation, namespace: str, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None = None) -> float:
    """The objective at ``params`` in ``namespace``, float64 (ForwardError as ``forward_value``), the forward
    handed ``params`` themselves (a forward that writes into its inputs changes them: the in-place check)."""
    if namespace == NUMPY:
        return forward_value(derivation, params, grad_output, shared=True)
    return forward_value_torch(derivation, params, grad_output, shared=True)


def torch_output_shape(derivation: Derivation, params: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    """The shape of the forward's output under torch at ``params`` (a layer without ``output=`` whose forward
    runs under torch only); () if it raises there too: the check runs it again and reports why."""
    try:
        with torch.no_grad():
            out = derivation.forward(torch_namespace(), **_tensors(params, False))
        return tuple(int(n) for n in out.shape)
    except Exception:  # user code: the forward, or its output's shape
        return ()


def torch_forward_unit(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None = None) -> float:
    """The unit roundoff of the precision a torch-only forward computes in, read off the dtype of the objective it
    returns (a function that casts its float64 inputs to float32 — an op written for float32 only — returns a
    float32 scalar); float64's otherwise, or where it raises (the check runs it again and reports why)."""
    g = None if grad_output is None else torch.from_numpy(np.array(grad_output, dtype=np.float64))
    try:
        with torch.no_grad():
            f = objective(derivation, torch_namespace(), _tensors(params, False), g)
    except Exception:  # user code: the forward
        return float(np.finfo(np.float64).eps) / 2
    dtype = getattr(f, "dtype", None)
    coarse = isinstance(dtype, torch.dtype) and dtype.is_floating_point and dtype.itemsize < 8
    return float(torch.finfo(dtype).eps) / 2 if coarse else float(np.finfo(np.float64).eps) / 2


class TorchObjective(BatchedObjective):
    """``BatchedObjective`` for a forward that runs only under torch: every evaluation outside vmap (the
    point itself, the fallback loop, the switches) in torch float64 instead of NumPy."""

    def _f_numpy(self, params: Mapping[str, np.ndarray]) -> float:
        self.evaluations += 1
        g = None if self.grad_output is None else torch.from_numpy(self.grad_output.copy())
        with torch.no_grad():
            return check_scalar(self.derivation, objective(self.derivation, torch_namespace(), _tensors(params, False), g))

    def _switches(self, xp: Any, params: Mapping[str, np.ndarray]) -> list:
        if self.derivation.kinks is None:
            return []
        if xp is not np_xp:  # already tensors (the vmapped rows)
            return list(self.derivation.kinks(xp, **params))
        with torch.no_grad():
            return [np.asarray(torch.as_tensor(s).numpy()) for s in self.derivation.kinks(torch_namespace(), **_tensors(params, False))]
