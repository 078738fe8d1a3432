"""A sharp witness for a forward that runs under NumPy only: the complex step.

Where f is analytic (a composition of +, ×, exp, log, tanh, dot, … that NumPy evaluates for complex arrays
as it does for real ones), f(x + i·h·e_k) = f(x) + i·h·∂f/∂x_k − h²/2·∂²f/∂x_k² + O(h³), so

    ∂f/∂x_k = Im f(x + i·h·e_k) / h + O(h²)

with no subtraction: the derivative is computed in the imaginary channel by the forward's own operations
and is exact to their rounding, as autograd is. The step h_k = CS_STEP · s_k (s_k the entry's scale, as
for finite differences) puts the O(h²) term far below rounding (docs/tolerances.md §11).

Code that is not analytic, or drops the imaginary part, gives a wrong value without complaint where it is
not caught here: a complex value written into a real buffer (``np.zeros(...)``: NumPy's ComplexWarning,
turned into a refusal), a real output (``np.abs``, ``np.var``, ``.real``), an exception (``int(...)``, a
Python comparison). What passes those tests is still not trusted silently: checks/verdict/fd_only.py
verifies each gradient against a directional central difference within its error model, and judges a
gradient whose complex step is refused or contradicted by finite differences alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from verigrad.analytic import Derivation

from ._fd import steps_for
from ._global_rng import user_call
from ._objective import np_xp
from .constants import CS_STEP, H0

__all__ = ["ComplexStep", "complex_step"]


class ComplexStep:
    """The complex-step gradient of each parameter that could be had (``values``), and why not for the others
    (``refused``, one line each); ``evaluations``: the complex forward calls made."""

    def __init__(self) -> None:
        self.values: dict[str, np.ndarray] = {}
        self.refused: dict[str, str] = {}
        self.evaluations = 0


class _Refused(Exception):
    pass


def _complex_objective(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None) -> complex:
    """f at complex ``params``: Σ G ⊙ out for a layer, the forward's value otherwise; _Refused where the forward
    raises, writes a complex value into a real array, or returns a real one."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            out = user_call(derivation.forward, np_xp, **{k: np.array(v, copy=True) for k, v in params.items()})  # copies, seeded
    except np.exceptions.ComplexWarning as e:
        raise _Refused("the forward writes complex values into a real array (the imaginary part is dropped)") from e
    except Exception as e:  # user code: not defined for complex arrays
        raise _Refused(f"the forward raised for complex inputs: {type(e).__name__}") from e
    arr = np.asarray(out)
    if arr.dtype.kind != "c":
        raise _Refused(f"the forward returns {arr.dtype} for complex inputs (the imaginary part is dropped)")
    if derivation.is_layer:
        if arr.shape != np.shape(grad_output):
            raise _Refused(f"the forward returns shape {arr.shape} for complex inputs")
        return complex(np.sum(grad_output * arr))
    if arr.size != 1:
        raise _Refused(f"the forward returns shape {arr.shape} for complex inputs")
    return complex(arr.reshape(()))


def _one(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output, name: str, out: ComplexStep) -> np.ndarray:
    x = np.asarray(params[name], dtype=np.float64)
    h = steps_for(x).reshape(-1) * (CS_STEP / H0)
    z = x.astype(np.complex128)
    flat = z.reshape(-1)
    g = np.empty(x.size)
    for k in range(x.size):
        flat[k] = complex(x.flat[k], h[k])
        out.evaluations += 1
        f = _complex_objective(derivation, {**params, name: z}, grad_output)
        flat[k] = x.flat[k]
        g[k] = f.imag / h[k]
    if not np.all(np.isfinite(g)):
        raise _Refused("the complex step is not finite")
    return g.reshape(x.shape)


def complex_step(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None, names: Sequence[str]) -> ComplexStep:
    """Im f(x + i·h·e_k)/h for every entry of every parameter in ``names``, each parameter on its own: one that
    cannot be had is refused with its reason, and the others are still computed (once the forward is refused
    for one, it is for all: it is the same code)."""
    out = ComplexStep()
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    g_out = None if grad_output is None else np.asarray(grad_output, dtype=np.float64)
    for name in names:
        try:
            out.values[name] = _one(derivation, params, g_out, name, out)
        except _Refused as e:
            out.refused[name] = str(e)
    return out
