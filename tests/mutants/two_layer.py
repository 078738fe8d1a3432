"""Wrong (and equivalent) derivations of the built-in two-layer networks (ReLU, sigmoid, sigmoid with MSE)."""

import numpy as np

from verigrad.analytic import Derivation, builtin
from verigrad.analytic.two_layer_sigmoid import predict

_RELU = builtin("two_layer_relu")
_SIG = builtin("two_layer_sigmoid")
_MSE = builtin("two_layer_sigmoid_mse")


def _like(base, name, gradients, check):
    return Derivation(name=name, shapes=base.shapes, forward=base.forward, gradients=gradients, kinks=base.kinks, check=check)


# --- two_layer_relu: h = X W1, a = max(h, 0), f = ‖Y − a W2‖²_F -------------------------------------
def _relu_parts(X, W1, W2, Y):
    h = X @ W1
    a = np.maximum(h, 0.0)
    return h, a, 2.0 * (a @ W2 - Y)


def _w2_not_transposed(X, W1, W2, Y):
    h, _a, dy = _relu_parts(X, W1, W2, Y)
    dh = (dy @ W2) * (h > 0)  # slip: W2 where W2ᵀ belongs
    return {"W1": X.T @ dh}


def _dW2_transposed(X, W1, W2, Y):
    _h, a, dy = _relu_parts(X, W1, W2, Y)
    return {"W2": dy.T @ a}  # slip: (D_out, H) instead of aᵀ dy


def _mask_on_upstream(X, W1, W2, Y):
    _h, _a, dy = _relu_parts(X, W1, W2, Y)
    da = dy @ W2.T
    dh = da * (da > 0)  # slip: the ReLU mask taken on ∂f/∂a instead of on h
    return {"W1": X.T @ dh, "X": dh @ W1.T}


def _relu_mask_on_a(X, W1, W2, Y):
    _h, a, dy = _relu_parts(X, W1, W2, Y)
    dh = (dy @ W2.T) * (a > 0)  # equivalent: a > 0 exactly where h > 0
    return {"W1": X.T @ dh, "W2": a.T @ dy, "X": dh @ W1.T, "Y": -dy}


# --- two_layer_sigmoid: h = X W1 + b1, s = σ(h), f = ‖Y − (s W2 + b2)‖²_F ----------------------------
def _sig_parts(X, W1, b1, W2, b2, Y, scale=1.0):
    h = X @ W1 + b1
    s = 1.0 / (1.0 + np.exp(-h))
    dy = 2.0 * (predict(np, X, W1, b1, W2, b2) - Y) * scale
    return h, s, dy


def _bias_not_summed(X, W1, b1, W2, b2, Y):
    _h, s, dy = _sig_parts(X, W1, b1, W2, b2, Y)
    dh = (dy @ W2.T) * s * (1.0 - s)
    return {"b1": dh, "b2": dy}  # slip: per-sample gradients, never summed over the batch


def _bias_keepdims(X, W1, b1, W2, b2, Y):
    _h, s, dy = _sig_parts(X, W1, b1, W2, b2, Y)
    dh = (dy @ W2.T) * s * (1.0 - s)
    return {"b1": dh.sum(axis=0, keepdims=True)}  # slip: (1, H) instead of (H,)


def _sigmoid_at_h(X, W1, b1, W2, b2, Y):
    h, _s, dy = _sig_parts(X, W1, b1, W2, b2, Y)
    dh = (dy @ W2.T) * h * (1.0 - h)  # slip: σ'(h) written h(1 − h) instead of s(1 − s)
    return {"W1": X.T @ dh, "b1": dh.sum(axis=0)}


def _residual_flipped(X, W1, b1, W2, b2, Y):
    _h, s, dy = _sig_parts(X, W1, b1, W2, b2, Y, scale=-1.0)  # slip: ∂f/∂Y_pred = 2(Y − Y_pred)
    return {"W2": s.T @ dy, "b2": dy.sum(axis=0)}


def _dW2_without_s(X, W1, b1, W2, b2, Y):
    _h, _s, dy = _sig_parts(X, W1, b1, W2, b2, Y)
    return {"W2": dy.sum(axis=0)}  # slip: treated like a bias, the factor sᵀ forgotten


def _sig_rearranged(X, W1, b1, W2, b2, Y):
    h, s, dy = _sig_parts(X, W1, b1, W2, b2, Y)
    e = np.exp(-h)
    dh = (dy @ W2.T) * e / (1.0 + e) ** 2  # equivalent: σ'(h) = e^−h / (1 + e^−h)²
    return {"W1": X.T @ dh, "b1": np.ones(len(X)) @ dh, "W2": s.T @ dy, "b2": dy.sum(axis=0), "X": dh @ W1.T, "Y": -dy}


# --- two_layer_sigmoid_mse: f = (1/(N·D_out)) ‖Y_pred − Y‖²_F ----------------------------------------
def _mse_missing_mean(X, W1, b1, W2, b2, Y):
    _h, s, dy = _sig_parts(X, W1, b1, W2, b2, Y)  # slip: the 1/(N·D_out) of the mean forgotten
    return {"W2": s.T @ dy, "b2": dy.sum(axis=0)}


def _mse_mean_over_batch(X, W1, b1, W2, b2, Y):
    _h, s, dy = _sig_parts(X, W1, b1, W2, b2, Y, scale=1.0 / len(X))  # slip: 1/N instead of 1/(N·D_out)
    return {"W2": s.T @ dy}


tlr_w2_not_transposed = _like(_RELU, "tlr_w2_not_transposed", _w2_not_transposed, ["W1"])
tlr_dW2_transposed = _like(_RELU, "tlr_dW2_transposed", _dW2_transposed, ["W2"])
tlr_mask_on_upstream = _like(_RELU, "tlr_mask_on_upstream", _mask_on_upstream, ["W1", "X"])
tlr_mask_on_a = _like(_RELU, "tlr_mask_on_a", _relu_mask_on_a, None)
tls_bias_not_summed = _like(_SIG, "tls_bias_not_summed", _bias_not_summed, ["b1", "b2"])
tls_bias_keepdims = _like(_SIG, "tls_bias_keepdims", _bias_keepdims, ["b1"])
tls_sigmoid_at_h = _like(_SIG, "tls_sigmoid_at_h", _sigmoid_at_h, ["W1", "b1"])
tls_residual_flipped = _like(_SIG, "tls_residual_flipped", _residual_flipped, ["W2", "b2"])
tls_dW2_without_s = _like(_SIG, "tls_dW2_without_s", _dW2_without_s, ["W2"])
tls_rearranged = _like(_SIG, "tls_rearranged", _sig_rearranged, None)
mse_missing_mean = _like(_MSE, "mse_missing_mean", _mse_missing_mean, ["W2", "b2"])
mse_mean_over_batch = _like(_MSE, "mse_mean_over_batch", _mse_mean_over_batch, ["W2"])

EXPECT = {
    "tlr_w2_not_transposed": {"W1": ("raised", {})},
    "tlr_dW2_transposed": {"W2": ("transpose", {"layout": "transposed"})},
    "tlr_mask_on_upstream": {"W1": ("unknown", {"unconfirmed": {"partial": 0}}), "X": ("unknown", {"unconfirmed": {"partial": 0}})},
    "tls_bias_not_summed": {"b1": ("missing_batch_sum", {"keepdims": False}), "b2": ("missing_batch_sum", {"keepdims": False})},
    "tls_bias_keepdims": {"b1": ("kept_axis", {"kept_axes": [0]})},
    "tls_sigmoid_at_h": {"W1": ("unknown", {}), "b1": ("unknown", {})},
    "tls_residual_flipped": {"W2": ("sign_flip", {}), "b2": ("sign_flip", {})},
    "tls_dW2_without_s": {"W2": ("shape_mismatch", {})},
    "mse_missing_mean": {
        "W2": ("scale", {"scale_form": "N·D_out", "scale_factor": lambda s: s["N"] * s["D_out"]}),
        "b2": ("scale", {"scale_form": "N·D_out", "scale_factor": lambda s: s["N"] * s["D_out"]}),
    },
    "mse_mean_over_batch": {"W2": ("scale", {"scale_form": "D_out", "scale_factor": lambda s: s["D_out"]})},
}
EQUIVALENT = ("tlr_mask_on_a", "tls_rearranged")
