"""Wrong (and equivalent) derivations of the built-in ``relu_regression``: f = ‖max(XW, 0) − Y‖²_F."""

import numpy as np

from verigrad.analytic import Derivation, builtin

_BASE = builtin("relu_regression")


def _like(name, gradients, check):
    return Derivation(name=name, shapes=_BASE.shapes, forward=_BASE.forward, gradients=gradients, kinks=_BASE.kinks, check=check)


def _sign_dY(X, W, Y):
    h = X @ W
    r = np.maximum(h, 0.0) - Y
    return {"Y": 2.0 * r}  # slip: ∂f/∂Y = −2r


def _half(X, W, Y):
    h = X @ W
    dh = (np.maximum(h, 0.0) - Y) * (h > 0)  # slip: the 2 of d(r²)/dr dropped
    return {"W": X.T @ dh, "X": dh @ W.T}


def _dW_transposed(X, W, Y):
    h = X @ W
    dh = 2.0 * (np.maximum(h, 0.0) - Y) * (h > 0)
    return {"W": dh.T @ X}  # slip: (M, N)(N, D) instead of Xᵀ dh


def _no_mask(X, W, Y):
    h = X @ W
    dh = 2.0 * (np.maximum(h, 0.0) - Y)  # slip: ReLU' forgotten
    return {"W": X.T @ dh, "X": dh @ W.T}


def _dW_summed(X, W, Y):
    h = X @ W
    dh = 2.0 * (np.maximum(h, 0.0) - Y) * (h > 0)
    return {"W": (X.T @ dh).sum(axis=0)}  # slip: an extra sum


def _mask_ge(X, W, Y):
    h = X @ W
    dh = 2.0 * (np.maximum(h, 0.0) - Y) * (h >= 0)  # equivalent: h is never exactly 0 off the kinks
    return {"W": X.T @ dh, "X": dh @ W.T, "Y": -2.0 * (np.maximum(h, 0.0) - Y)}


def _mask_on_output(X, W, Y):
    a = np.maximum(X @ W, 0.0)
    dh = 2.0 * (a - Y) * (a > 0)  # equivalent: a > 0 exactly where h > 0
    return {"W": X.T @ dh, "X": dh @ W.T, "Y": 2.0 * (Y - a)}


def _rearranged(X, W, Y):
    h = X @ W
    dh = np.where(h > 0, 2.0 * h - 2.0 * Y, 0.0)  # equivalent: r = h − Y where the mask is on
    return {"W": (dh.T @ X).T, "X": np.einsum("nm,dm->nd", dh, W), "Y": 2.0 * Y - 2.0 * np.maximum(h, 0.0)}


rr_sign_dY = _like("rr_sign_dY", _sign_dY, ["Y"])
rr_half = _like("rr_half", _half, ["W", "X"])
rr_dW_transposed = _like("rr_dW_transposed", _dW_transposed, ["W"])
rr_no_mask = _like("rr_no_mask", _no_mask, ["W", "X"])
rr_dW_summed = _like("rr_dW_summed", _dW_summed, ["W"])
rr_mask_ge = _like("rr_mask_ge", _mask_ge, None)
rr_mask_on_output = _like("rr_mask_on_output", _mask_on_output, None)
rr_rearranged = _like("rr_rearranged", _rearranged, None)

EXPECT = {
    "rr_sign_dY": {"Y": ("sign_flip", {"scale_factor": -1.0})},
    "rr_half": {"W": ("scale", {"scale_factor": 0.5}), "X": ("scale", {"scale_factor": 0.5})},
    "rr_dW_transposed": {"W": ("transpose", {"layout": "transposed"})},
    "rr_no_mask": {"W": ("partial", {"pattern": "kinks()[0] ≤ 0"}), "X": ("partial", {"pattern": "kinks()[0] ≤ 0"})},
    "rr_dW_summed": {"W": ("shape_mismatch", {})},
}
EQUIVALENT = ("rr_mask_ge", "rr_mask_on_output", "rr_rearranged")
