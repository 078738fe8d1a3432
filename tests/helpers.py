"""Small shared builders for the tests: wrong variants of a correct derivation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from verigrad.analytic import Derivation


def altered(base: Derivation, name: str, change: Callable[[dict, dict], dict]) -> Derivation:
    """``base`` with its gradients passed through ``change(grads, params)``."""

    def gradients(**params):
        return change(dict(base.gradients(**params)), params)

    return Derivation(
        name=name,
        shapes=base.shapes,
        forward=base.forward,
        gradients=gradients,
        output=base.output,
        kinks=base.kinks,
        ranges=base.ranges,
        dims=base.dims,
        data=base.data,
        hyper=base.hyper,
        seed=base.seed,
    )


def plant(param: str, index: tuple[int, ...], relative: float) -> Callable[[dict, dict], dict]:
    """Add ``relative`` × max|g| to one entry of ∂f/∂param (clipped to the drawn shape)."""

    def change(grads: dict, params: dict) -> dict:
        g = np.array(grads[param], dtype=np.float64, copy=True)
        ix = tuple(min(i, n - 1) for i, n in zip(index, g.shape, strict=True))
        g[ix] += relative * max(float(np.max(np.abs(g))), 1e-300)
        grads[param] = g
        return grads

    return change
