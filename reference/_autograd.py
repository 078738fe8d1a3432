"""Witness 2: torch autograd on the same forward, in float64."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from verigrad.analytic import Derivation

from ._fd import line_points
from ._objective import ForwardError, check_scalar, objective
from ._torch import Deferred, torch_namespace
from .constants import FALLBACK_JITTER_EPS

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)

EPS64 = float(np.finfo(np.float64).eps)


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
        f = objective(derivation, torch_namespace(), leaves, g)
    except ForwardError:
        raise
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


def line_autograd(
    derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None, rng: np.random.Generator, *, device: str = "cpu"
) -> tuple[dict[str, np.ndarray], np.ndarray | None, dict[str, np.ndarray]]:
    """Autograd along a random line of the point (reference._fd.line_points): (the parameters and grad_output there,
    and ∂f/∂param there), each (points on the lines, …), one call per point."""
    moved, g_moved = line_points(params, grad_output, rng)
    n = len(next(iter(moved.values())))
    at = [
        autograd_gradients(derivation, {k: v[j] for k, v in moved.items()}, None if g_moved is None else g_moved[j], device=device) for j in range(n)
    ]
    return moved, g_moved, {k: np.stack([a[k] for a in at]) for k in moved}


def custom_functions(derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None = None) -> list[str]:
    """The names of the ``torch.autograd.Function`` subclasses whose hand-written backward the forward's
    graph at ``params`` goes through, in the order first met from the output (none: an all-torch graph)."""
    leaves, g = _leaves(params, grad_output, "cpu", False)
    f = objective(derivation, torch_namespace(), leaves, g)
    if not isinstance(f, torch.Tensor) or f.grad_fn is None:
        return []
    found: dict[str, None] = {}
    todo, seen = [f.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            found[getattr(node, "_forward_cls", type(node)).__name__] = None
        todo.extend(nxt for nxt, _ in node.next_functions)
    return list(found)


def _leaves(values: Mapping[str, np.ndarray], grad_out: np.ndarray | None, device: str, need_graph: bool):
    leaves = {n: torch.as_tensor(np.asarray(v, dtype=np.float64), device=device).clone().requires_grad_(True) for n, v in values.items()}
    g = None
    if grad_out is not None:
        g = torch.as_tensor(np.asarray(grad_out, dtype=np.float64), device=device).clone().requires_grad_(need_graph)
    return leaves, g


def _gradient_and_change(derivation: Derivation, base, g_base, moved, g_moved, device: str):
    """(autograd at the moved point, its linear change H·(x' − x) along the step), by a double backward."""
    names = list(base)
    leaves, g = _leaves(moved, g_moved, device, True)
    f = objective(derivation, torch_namespace(), leaves, g).reshape(())
    wrt = list(leaves.values()) + ([g] if g is not None else [])
    grads = torch.autograd.grad(f, wrt, create_graph=True, allow_unused=True)
    here = {n: (np.zeros(base[n].shape) if gr is None else gr.detach().cpu().numpy()) for n, gr in zip(names, grads, strict=False)}
    # The linear change of every gradient along the step: Σ_q ⟨∂f/∂q, Δq⟩ differentiated once more.
    pairs = [(gr, torch.as_tensor(moved[n] - base[n], device=device)) for n, gr in zip(names, grads, strict=False) if gr is not None]
    if g is not None and grads[-1] is not None:
        pairs.append((grads[-1], torch.as_tensor(g_moved - g_base, device=device)))
    inner = sum((torch.sum(gr * step) for gr, step in pairs if gr.requires_grad), torch.zeros((), dtype=torch.float64, device=device))
    if not inner.requires_grad:
        return here, {n: np.zeros(base[n].shape) for n in names}
    hv = torch.autograd.grad(inner, list(leaves.values()), allow_unused=True)
    return here, {n: (np.zeros(base[n].shape) if h is None else h.detach().cpu().numpy()) for n, h in zip(names, hv, strict=True)}


def _jitter(v: np.ndarray, relative: float, rng: np.random.Generator) -> np.ndarray:
    return v + v * relative * rng.uniform(-1, 1, v.shape)


def rounding_noise(
    derivation: Derivation,
    params: Mapping[str, np.ndarray],
    grad_output: np.ndarray | None,
    rng: np.random.Generator,
    *,
    jitters: int,
    relative: float,
    device: str = "cpu",
    probes: list | None = None,
    at_base: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per entry, the rounding noise of the float64 autograd gradient at the point.

    Each input x moves to x' = fl(x + x·δ), δ uniform in ±``relative``, and the measured noise is
    |g(x') − g(x) − H(x')·(x' − x)|: the Hessian-vector product (double backward, grad_output
    included for a layer) removes the true change of the gradient, and what is left, besides an
    O(δ²) remainder, is the difference of two roundings. The jitter must be one-sided: along a
    nearly linear intermediate the rounding error is an arithmetic progression modulo one ulp, so
    a symmetric second difference g(x+) + g(x−) − 2g(x) cancels it exactly. Where the forward's torch
    graph has no double backward, the change of the gradient under a jitter of FALLBACK_JITTER_EPS
    machine epsilons is used.

    ``probes``, when a list, receives (x', grad_output', H·(x' − x)) per jitter: the caller measures
    the rounding of another gradient of the same f (the hand-derived one) at the same points.
    ``at_base``: autograd_gradients at the point itself, when the caller has computed it already.
    """
    names = list(params)
    base = {n: np.asarray(v, dtype=np.float64) for n, v in params.items()}
    g_base = None if grad_output is None else np.asarray(grad_output, dtype=np.float64)
    sigma = {n: np.zeros(v.shape) for n, v in base.items()}
    if at_base is None:
        at_base = autograd_gradients(derivation, base, g_base, device=device)
    for _ in range(jitters):
        moved = {n: _jitter(v, relative, rng) for n, v in base.items()}
        g_moved = None if g_base is None else _jitter(g_base, relative, rng)
        try:
            here, linear = _gradient_and_change(derivation, base, g_base, moved, g_moved, device)
            noise = {n: here[n] - at_base[n] - linear[n] for n in names}
        except RuntimeError:  # no double backward through some op: a jitter of a few ulps instead
            moved = {n: _jitter(v, FALLBACK_JITTER_EPS * EPS64, rng) for n, v in base.items()}
            g_moved = None if g_base is None else _jitter(g_base, FALLBACK_JITTER_EPS * EPS64, rng)
            jit = autograd_gradients(derivation, moved, g_moved, device=device)
            noise = {n: jit[n] - at_base[n] for n in names}
            linear = {n: np.zeros(base[n].shape) for n in names}
        if probes is not None:
            probes.append((moved, g_moved, linear))
        for n in names:
            with np.errstate(invalid="ignore"):
                sigma[n] = np.maximum(sigma[n], np.where(np.isfinite(noise[n]), np.abs(noise[n]), 0.0))
    return sigma
