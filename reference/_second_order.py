"""Witnesses of second order and of forward mode: autograd's double backward, torch's forward-mode AD, and central
differences of a vector-valued function along a direction, with reference/_fd.py's error model.

A hand-derived Hessian-vector product H·v is the derivative of the gradient along v, and a hand-written jvp J·v
that of the forward: both are judged entry by entry against an exact witness (``autograd_hvp``: the gradient of
⟨∇f, v⟩, a double backward; ``forward_ad_jvp``: dual numbers through the torch forward) and against

    D(h) = (g(x + h v) − g(x − h v)) / 2h      per entry of g, at h, h/2 and h/4 (``along``),

g being the user's gradients (for H·v, so a NumPy-only forward is covered too) or the forward itself (for J·v).
The error model is reference/_fd.py's, per entry of g instead of per entry of x:

* the direction is v = z ⊙ s, z = ±1 at random and s the entry's scale max(|x_i|, rms(x)) rounded up to a power
  of two, and the step h = 2^⌊log2 H0⌋, the power of two at or below u^(1/3) (of u_f, for a function computing
  in a coarser precision u_f, as reference/_fd.py sizes its steps): every displacement c·h·v_i
  (c = 1, ½, ¼) is a power of two far above the ulp of x_i, so x ± c·h·v is the intended point exactly (but
  where x_i lies within c·h·|v_i| below a power of two and is an odd multiple of its ulp: one ulp, 2^-35 of the
  displacement), and D(h) needs no division by the steps as represented;
* rounding: ε_i, the spread of g_i over JITTER_POINTS points jittered by JITTER_ULPS ulps, floored at
  NOISE_FLOOR_ULPS·u·|g_i| (``noise_from_jitter``), so D carries at most ρ_i = ε_i / h;
* truncation and kinks: ``richardson`` of reference/_fd.py on D(h), D(h/2), D(h/4): the estimate R2, its error
  |R2 − R1| + 6ρ (or the unconverged one), and a kink where the one-sided slope gap of g_i does not shrink.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from verigrad.analytic import Derivation

from ._fd import FDEstimate, noise_from_jitter, richardson, steps_for
from ._global_rng import user_call
from ._objective import ForwardError, objective, read_as_scalar
from ._torch import Deferred, torch_namespace
from .constants import H0, JITTER_POINTS, JITTER_ULPS, STEP_EXPONENT, U64

torch = Deferred("torch", globals())  # imported on first use (reference/_torch.py)


def step_for(unit: float = U64) -> float:
    """The step along v: the power of two at or below u^(1/3) of the precision the function computes in (H0 for
    float64; see the module docstring)."""
    return float(2.0 ** np.floor(np.log2(H0 if unit == U64 else unit**STEP_EXPONENT)))


#: The fractions of the step the differences are taken at (Richardson: h, h/2, h/4).
FRACTIONS = (1.0, 0.5, 0.25)

Vector = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def direction(params: Mapping[str, np.ndarray], names: Sequence[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """v = z ⊙ s on the parameters ``names``: z = ±1, s = max(|x_i|, rms(x)) rounded up to a power of two."""
    out = {}
    for n in names:
        x = np.asarray(params[n], dtype=np.float64)
        scale = np.exp2(np.ceil(np.log2(steps_for(x) / H0)))
        out[n] = np.where(rng.random(x.shape) < 0.5, -1.0, 1.0) * scale
    return out


def moved(params: Mapping[str, np.ndarray], v: Mapping[str, np.ndarray], t: float) -> dict[str, np.ndarray]:
    """The point x + t·v (parameters without a direction unchanged), as fresh arrays."""
    return {n: np.asarray(x, dtype=np.float64) + t * v[n] if n in v else np.array(x, dtype=np.float64, copy=True) for n, x in params.items()}


def _flat(out: Mapping[str, np.ndarray], keys: Sequence[str]) -> list[np.ndarray]:
    return [np.asarray(out[k], dtype=np.float64).reshape(-1) for k in keys]


def along(
    fn: Vector, params: Mapping[str, np.ndarray], v: Mapping[str, np.ndarray], rng: np.random.Generator, unit: float = U64
) -> tuple[dict[str, FDEstimate], int]:
    """The derivative of every array ``fn`` returns along ``v`` at ``params``, with its error estimate per entry
    (module docstring), and the number of calls of ``fn`` spent. ``fn`` takes and returns dicts of arrays."""
    h = step_for(unit)
    base = fn(moved(params, v, 0.0))
    keys = list(base)
    f0 = _flat(base, keys)
    sides = {c: (_flat(fn(moved(params, v, c * h)), keys), _flat(fn(moved(params, v, -c * h)), keys)) for c in FRACTIONS}
    relative = JITTER_ULPS * unit * 2
    jit = [
        _flat(fn({n: np.asarray(x, dtype=np.float64) * (1.0 + relative * rng.uniform(-1.0, 1.0, np.shape(x))) for n, x in params.items()}), keys)
        for _ in range(JITTER_POINTS)
    ]
    out = {}
    for i, k in enumerate(keys):
        shape = np.shape(base[k])
        with np.errstate(all="ignore"):
            eps = noise_from_jitter(np.stack([j[i] for j in jit], axis=1), f0[i], unit)
            d = [(sides[c][0][i] - sides[c][1][i]) / (2 * c * h) for c in FRACTIONS]
            value, error, kinked = richardson(*d, sides[1.0][0][i], sides[1.0][1][i], sides[0.25][0][i], sides[0.25][1][i], f0[i], h, eps / h)
        out[k] = FDEstimate(value.reshape(shape), error.reshape(shape), np.full(shape, h), kinked.reshape(shape), np.ones(shape, dtype=bool))
    return out, 1 + 2 * len(FRACTIONS) + JITTER_POINTS


def _tensors(params: Mapping[str, np.ndarray], device: str, grad: bool) -> dict[str, object]:
    return {n: torch.tensor(np.asarray(x, dtype=np.float64), device=device, requires_grad=grad) for n, x in params.items()}


def _user_forward_error(e: Exception) -> ForwardError:
    return e if isinstance(e, ForwardError) else ForwardError(f"forward raised under torch: {type(e).__name__}: {e}")


def autograd_hvp(
    derivation: Derivation, params: Mapping[str, np.ndarray], grad_output: np.ndarray | None, v: Mapping[str, np.ndarray], device: str = "cpu"
) -> dict[str, np.ndarray]:
    """H·v on the parameters of ``v``: the gradient of ⟨∇f, v⟩ (a double backward of the torch forward, float64).
    ForwardError where the forward or its graph cannot (no double backward through some op)."""
    leaves = _tensors(params, device, True)
    g = None if grad_output is None else torch.as_tensor(np.asarray(grad_output, dtype=np.float64), device=device)
    wrt = [leaves[n] for n in v]
    try:
        f = objective(derivation, torch_namespace(), leaves, g).reshape(())
        grads = torch.autograd.grad(f, wrt, create_graph=True, allow_unused=True)
        inner = sum(
            (torch.sum(gr * torch.as_tensor(v[n], device=device)) for n, gr in zip(v, grads, strict=True) if gr is not None and gr.requires_grad),
            torch.zeros((), dtype=torch.float64, device=device),
        )
        hv = torch.autograd.grad(inner, wrt, allow_unused=True) if inner.requires_grad else [None] * len(wrt)
    except Exception as e:  # the forward is user code
        raise _user_forward_error(e) from e
    return {n: np.zeros(np.shape(params[n])) if h is None else h.detach().cpu().numpy() for n, h in zip(v, hv, strict=True)}


def forward_output(derivation: Derivation, xp: object, params: Mapping[str, object]) -> object:
    """The forward's own value (a layer's output array, or the scalar objective), as ``objective`` reads it."""
    out = user_call(derivation.forward, xp, **params)
    shape = tuple(getattr(out, "shape", ()))
    return xp.reshape(out, ()) if read_as_scalar(derivation, shape) else out


def forward_ad_jvp(derivation: Derivation, params: Mapping[str, np.ndarray], v: Mapping[str, np.ndarray], device: str = "cpu") -> np.ndarray:
    """J·v of the torch forward by forward-mode AD (dual numbers, float64). ForwardError where it cannot."""
    import torch.autograd.forward_ad as fwad

    try:
        with fwad.dual_level():
            args = {n: fwad.make_dual(t, torch.as_tensor(v[n], device=device)) if n in v else t for n, t in _tensors(params, device, False).items()}
            out = forward_output(derivation, torch_namespace(), args)
            if not isinstance(out, torch.Tensor):
                raise ForwardError("forward under torch returned no tensor: forward-mode AD cannot see it")
            tangent = fwad.unpack_dual(out).tangent
            shape = tuple(out.shape)
    except Exception as e:  # the forward is user code
        raise _user_forward_error(e) from e
    return np.zeros(shape) if tangent is None else tangent.detach().cpu().numpy().astype(np.float64)
