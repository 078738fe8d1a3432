"""torch.autograd.gradcheck's checks of a backward besides its values, for ``verigrad.gradcheck`` (checks/gradcheck.py).

* ``nondet_tol`` — reentrancy: the backward called twice at the same inputs gives the same result. A difference
  beyond nondet_tol fails with its size; one within it is tolerated (a backward nondeterministic by design, atomic
  adds on a GPU): the caller judges the first call's result.
* ``check_undefined_grad`` — the backward with undefined upstream gradients (every differentiable output's, and with
  several, each in turn) must not raise, and with all of them undefined gives no nonzero gradient: an undefined
  gradient stands for zeros. A custom Function sees zeros (materialized, the default) or None (after
  ``ctx.set_materialize_grads(False)``), as under torch.autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from verigrad.reference import keeps_generators, seeded_at, user_call

__all__ = ["reentrant", "undefined_grad_failure"]

#: The seed of the global generators before each of the two calls (the check seeds them alike at a point).
CALL_SEED = 0


def _spread(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| over the entries of two calls' results, NaN against NaN no difference, NaN against a number ∞."""
    with np.errstate(invalid="ignore"):
        d = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
    return float(np.max(np.where(np.isnan(d), np.inf, d), initial=0.0))


@keeps_generators
def reentrant(
    gradients: Callable[..., Mapping[str, np.ndarray]], point: Mapping[str, np.ndarray], title: str, names: Mapping[str, int], nondet_tol: float
) -> tuple[str | None, float, dict[str, np.ndarray] | None]:
    """``gradients`` called twice at ``point``, the global generators seeded alike before each call (as the check seeds
    them: reference.seeded_at): (why it fails, or None; the largest difference seen; the first call's result where
    a difference within ``nondet_tol`` was seen, else None). ``names``: the input index of each gradient's name."""
    try:
        with seeded_at(CALL_SEED):
            first, second = user_call(gradients, **point), user_call(gradients, **point)
    except Exception:  # user code: the check itself reports what the backward raises
        return None, 0.0, None
    spreads = {n: _spread(first[n], second[n]) for n in first}
    name, worst = max(spreads.items(), key=lambda kv: kv[1], default=("", 0.0))
    if worst > nondet_tol:
        return (
            (
                f"verigrad.gradcheck: the backward of {title} is not deterministic: two calls at the same point give "
                f"∂f/∂input {names[name]} differing by up to {worst:.3g} (nondet_tol={nondet_tol:g}); a backward "
                "nondeterministic by design (atomic adds on a GPU) is accepted with nondet_tol= at least that"
            ),
            worst,
            None,
        )
    return None, worst, (first if worst > 0.0 else None)


def undefined_grad_failure(call: Callable[..., Any], inputs: Sequence[Any], wrt: Sequence[int], outs: Sequence[int], title: str) -> str | None:
    """Why the backward of ``call`` fails torch's ``check_undefined_grad`` at ``inputs`` (module docstring), or None.
    ``wrt``: the inputs that require grad; ``outs``: the differentiable outputs' positions."""
    if not outs:
        return None
    undefine = torch._C._functions.UndefinedGrad()
    for which in [None, *(outs if len(outs) > 1 else [])]:
        what = "every output" if which is None else f"output {which}"
        try:
            args = [x.detach().requires_grad_(True) if i in wrt else x for i, x in enumerate(inputs)]
            got = call(*args)
            got = tuple(got) if isinstance(got, tuple | list) else (got,)
            picked = [undefine(got[k]) if which in (None, k) else got[k] for k in outs]
            grads = torch.autograd.grad(picked, [args[i] for i in wrt], [torch.zeros_like(o) for o in picked], allow_unused=True)
        except Exception as e:  # user code: the function and its backward
            return (
                f"verigrad.gradcheck: the backward of {title} raised with the upstream gradient of {what} undefined "
                f"(check_undefined_grad: None, or zeros where the Function materializes it): {type(e).__name__}: {' '.join(str(e).split())}"
            )
        nonzero = [i for i, g in zip(wrt, grads, strict=True) if which is None and g is not None and not bool(torch.all(g == 0))]
        if nonzero:
            return (
                f"verigrad.gradcheck: the backward of {title} gives a nonzero gradient for input {nonzero[0]} with the upstream "
                "gradient of every output undefined (check_undefined_grad: an undefined gradient stands for zeros)"
            )
    return None
