"""Hand-written gradients given as a ``torch.autograd.Function`` (a custom backward).

``Function.apply(*params)`` takes the parameters in the order of ``shapes`` and returns the
objective (or, for a layer, its output); its ``backward`` holds the hand-derived formulas. The
adapter below turns it into an ordinary ``gradients(**params)`` so that every check, report and
diagnosis treats it like any other derivation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any


def is_torch_function(obj: object) -> bool:
    """Whether ``obj`` is a subclass of ``torch.autograd.Function`` (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, type) and issubclass(obj, torch.autograd.Function)


def function_gradients(function: Any, params: Sequence[str], is_layer: bool) -> Callable[..., dict[str, Any]]:
    """``gradients(**params[, grad_output])`` computed by ``function``'s own backward, in float64."""
    import numpy as np
    import torch

    def gradients(**values: Any) -> dict[str, Any]:
        g = values.pop("grad_output", None)
        leaves = [torch.tensor(np.asarray(values[p], dtype=np.float64), requires_grad=True) for p in params]
        out = function.apply(*leaves)
        if is_layer:
            f = torch.sum(out * torch.as_tensor(np.asarray(g, dtype=np.float64)))
        else:
            f = out.reshape(())
        grads = torch.autograd.grad(f, leaves, allow_unused=True)
        return {
            p: (np.zeros(leaf.shape) if gr is None else gr.detach().cpu().numpy())
            for p, leaf, gr in zip(params, leaves, grads, strict=True)
        }

    gradients.__name__ = f"{function.__name__}.backward"
    return gradients
