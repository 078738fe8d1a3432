"""Witness 2: torch autograd on the same forward, in float64."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from analytic import Derivation

from ._objective import ForwardError, check_scalar, objective, torch_xp


def autograd_gradients(
    derivation: Derivation,
    params: Mapping[str, np.ndarray],
    grad_output: np.ndarray | None = None,
    *,
    expand: Mapping[str, tuple[int, ...]] | None = None,
    device: str = "cpu",
    unused: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """∂f/∂param for every parameter, by reverse-mode autodiff of the forward in float64.

    ``expand`` broadcasts a parameter to a larger shape before the forward (e.g. a bias (H,) to
    (N, H)); its gradient is then returned per broadcast copy, which is how a gradient "not summed
    over the batch" is recognised. Entries may be non-finite where autograd breaks down (0·inf);
    the caller decides those by the other witness. Parameters the forward does not use at all are
    appended to ``unused`` when a list is given (their gradient is returned as zeros).
    """
    expand = expand or {}
    leaves = {}
    for name, value in params.items():
        t = torch.as_tensor(np.asarray(value, dtype=np.float64), device=device)
        if name in expand:
            t = t.expand(*expand[name]).clone()
        leaves[name] = t.requires_grad_(True)
    g = None if grad_output is None else torch.as_tensor(np.asarray(grad_output, dtype=np.float64), device=device)
    try:
        f = objective(derivation, torch_xp, leaves, g)
    except Exception as e:  # the forward is user code: report, don't crash
        raise ForwardError(f"forward raised under torch: {type(e).__name__}: {e}") from e
    if not isinstance(f, torch.Tensor):
        check_scalar(derivation, f)
        raise ForwardError("forward under torch returned a Python number, not a tensor: it does not depend on the parameters")
    check_scalar(derivation, f)
    if not f.requires_grad:
        if unused is not None:
            unused.extend(leaves)
        return {n: np.zeros(t.shape) for n, t in leaves.items()}
    grads = torch.autograd.grad(f.reshape(()), list(leaves.values()), allow_unused=True)
    if unused is not None:
        unused.extend(n for n, gr in zip(leaves, grads, strict=True) if gr is None)
    return {
        n: (np.zeros(t.shape) if gr is None else gr.detach().cpu().numpy().astype(np.float64, copy=False))
        for (n, t), gr in zip(leaves.items(), grads, strict=True)
    }
