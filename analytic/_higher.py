"""Forward mode of a ``torch.autograd.Function``: its hand-written ``jvp`` staticmethod as a derivation's ``jvp``.

torch runs a Function's ``jvp`` when forward-mode AD meets it (``torch.autograd.forward_ad``), as
``torch.autograd.gradcheck(check_forward_ad=True)`` does: ``function_jvp`` does the same, at float64 leaves
carrying the tangent v, and returns the output's tangent J·v (checks/verdict/second_order.py judges it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def has_own_jvp(function: Any) -> bool:
    """Whether a ``torch.autograd.Function`` subclass defines ``jvp`` itself (the base's raises)."""
    import torch

    return getattr(function, "jvp", None) is not getattr(torch.autograd.Function, "jvp", None)


def function_jvp(function: Any, params: Sequence[str]) -> Callable[..., Any]:
    """``jvp(v, **params)`` → J·v of ``function.apply`` (params in the order of ``shapes``), by forward-mode AD
    through the Function's own ``jvp``, in float64."""
    import numpy as np
    import torch
    import torch.autograd.forward_ad as fwad

    def jvp(v: dict[str, Any], **values: Any) -> Any:
        with fwad.dual_level():
            duals = [
                fwad.make_dual(torch.tensor(np.asarray(values[p], dtype=np.float64)), torch.tensor(np.asarray(v[p], dtype=np.float64)))
                for p in params
            ]
            tangent = fwad.unpack_dual(function.apply(*duals)).tangent
            out = function.apply(*[torch.tensor(np.asarray(values[p], dtype=np.float64)) for p in params])
        return np.zeros(tuple(out.shape)) if tangent is None else tangent.detach().cpu().numpy()

    jvp.__name__ = f"{function.__name__}.jvp"
    return jvp
