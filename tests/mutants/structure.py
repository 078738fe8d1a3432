"""Wrong (and equivalent) derivations whose slip is a form of the sizes or a term of a sum: a factor √D or
N − 1, a bias gradient kept per pixel, a Jacobian's diagonal only, one entry of each block, an assignment
where overlapping windows accumulate, a sum over a sequence cut short. Objectives in ``_objectives.py``."""

import numpy as np

from verigrad import Derivation

from ._objectives import (
    ATTENTION,
    CHAN_AFFINE,
    CIRC_CONV,
    LEAKY,
    LOG_SOFTMAX,
    POINTWISE,
    PREFIX_SUM,
    SMOOTH,
    SOFTMAX,
    UPSAMPLE,
    UPSAMPLE2D,
    VARIANCE,
    softmax_rows,
)


# --- scaled attention scores: out = Q Kᵀ / √D -----------------------------------------------------------
def _attention_no_sqrt(Q, K, grad_output):
    return {"Q": grad_output @ K}  # slip: the 1/√D of the scaling forgotten


def _attention_over_d(Q, K, grad_output):
    return {"K": grad_output.T @ Q / Q.shape[1]}  # slip: divided by D instead of √D


def _attention_power(Q, K, grad_output):
    return {"Q": grad_output @ K * Q.shape[1] ** -0.5, "K": np.einsum("nm,nd->md", grad_output, Q) / np.sqrt(Q.shape[1])}  # equivalent


# --- unbiased sample variance: f = Σ (x − x̄)² / (N − 1) --------------------------------------------------
def _variance_biased(x):
    return {"x": 2.0 * (x - x.mean()) / len(x)}  # slip: the biased 1/N where the forward has 1/(N − 1)


def _variance_unnormalised(x):
    return {"x": 2.0 * (x - x.mean())}  # slip: the 1/(N − 1) dropped


def _variance_centered_sum(x):
    n = len(x)
    return {"x": 2.0 * (n * x - x.sum()) / (n * (n - 1))}  # equivalent: x − x̄ = (N x − Σx)/N


# --- pointwise (1×1) convolution with a bias ---------------------------------------------------------------
def _pointwise_db_per_pixel(X, K, b, grad_output):
    return {"b": grad_output.sum(axis=0)}  # slip: summed over the batch only, the spatial axes kept: (C, H, W)


def _pointwise_db_per_row(X, K, b, grad_output):
    return {"b": grad_output.sum(axis=(0, 3))}  # slip: the H axis not summed: (C, H)


def _pointwise_einsum_bias(X, K, b, grad_output):
    return {"b": np.einsum("nchw->c", grad_output), "K": grad_output.transpose(1, 0, 2, 3).reshape(len(K), -1)
            @ X.transpose(1, 0, 2, 3).reshape(X.shape[1], -1).T}  # equivalent


# --- channel affine (batch norm's γ, β) ----------------------------------------------------------------------
def _affine_dbeta_missing_w(X, gamma, beta, grad_output):
    return {"beta": grad_output.sum(axis=(0, 2))}  # slip: the W axis not summed: (C, W)


def _affine_dgamma_per_pixel(X, gamma, beta, grad_output):
    return {"gamma": (grad_output * X).sum(axis=0)}  # slip: the spatial axes kept: (C, H, W)


# --- softmax and log-softmax rows --------------------------------------------------------------------------
def _softmax_diagonal(X, grad_output):
    p = softmax_rows(X)
    return {"X": grad_output * p * (1.0 - p)}  # slip: only the diagonal p(1 − p) of diag(p) − p pᵀ


def _softmax_jacobian(X, grad_output):
    p = softmax_rows(X)
    jac = np.einsum("ni,ij->nij", p, np.eye(X.shape[1])) - np.einsum("ni,nj->nij", p, p)  # equivalent: the full Jacobian
    return {"X": np.einsum("nij,ni->nj", jac, grad_output)}


def _log_softmax_diagonal(X, grad_output):
    return {"X": grad_output * (1.0 - softmax_rows(X))}  # slip: only the diagonal 1 − p of I − 1 pᵀ


# --- circular moving average and circular convolution: overlapping windows ----------------------------------
def _smooth_assigned(X, grad_output):
    dX = np.zeros_like(X)
    for t in range(X.shape[1]):
        dX[:, t] = grad_output[:, t] / 2.0  # slip: = where two windows add up (+=)
        dX[:, (t + 1) % X.shape[1]] = grad_output[:, t] / 2.0
    return {"X": dX}


def _smooth_rolled(X, grad_output):
    return {"X": (grad_output + np.roll(grad_output, 1, axis=1)) / 2.0}  # equivalent: the loop as one roll


def _circ_conv_assigned(X, w, grad_output):
    T = X.shape[1]
    dX = np.zeros_like(X)
    for t in range(T):
        for j in range(3):
            dX[:, (t + j) % T] = w[j] * grad_output[:, t]  # slip: = where three windows add up (+=)
    return {"X": dX}


# --- nearest upsampling by 2: each entry copied into a block -------------------------------------------------
def _upsample_first(X, grad_output):
    return {"X": grad_output[:, :, 0]}  # slip: one entry per block where the block's sum belongs


def _upsample_added(X, grad_output):
    return {"X": grad_output[:, :, 0] + grad_output[:, :, 1]}  # equivalent


def _upsample2d_strided(X, grad_output):
    return {"X": grad_output[:, :, 0, :, 0]}  # slip: G[::2, ::2] of the upsampled image, not the 2×2 block sums


# --- sums over the rest of a sequence, cut short ----------------------------------------------------------------
def _prefix_sum_window(X, grad_output):
    T = X.shape[1]
    return {"X": np.stack([grad_output[:, t : t + 3].sum(axis=1) for t in range(T)], axis=1)}  # slip: 3 terms, not T − t


def _prefix_sum_loop(X, grad_output):
    dX = np.zeros_like(X)
    for t in range(X.shape[1]):  # equivalent: out[:, t] adds X[:, s] for every s ≤ t
        dX[:, : t + 1] += grad_output[:, t : t + 1]
    return {"X": dX}


def _leaky_truncated_bptt(X, grad_output):
    T = X.shape[1]
    dX = np.zeros_like(X)
    for t in range(T):  # slip: backpropagation through time cut after 3 steps
        dX[:, t] = sum(0.5 ** (s - t) * grad_output[:, s] for s in range(t, min(t + 3, T)))
    return {"X": dX}


def _d(name, spec, gradients, check=None):
    return Derivation(name=name, gradients=gradients, check=check, **spec)


attention_no_sqrt = _d("attention_no_sqrt", ATTENTION, _attention_no_sqrt, ["Q"])
attention_over_d = _d("attention_over_d", ATTENTION, _attention_over_d, ["K"])
attention_power = _d("attention_power", ATTENTION, _attention_power)
variance_biased = _d("variance_biased", VARIANCE, _variance_biased)
variance_unnormalised = _d("variance_unnormalised", VARIANCE, _variance_unnormalised)
variance_centered_sum = _d("variance_centered_sum", VARIANCE, _variance_centered_sum)
pointwise_db_per_pixel = _d("pointwise_db_per_pixel", POINTWISE, _pointwise_db_per_pixel, ["b"])
pointwise_db_per_row = _d("pointwise_db_per_row", POINTWISE, _pointwise_db_per_row, ["b"])
pointwise_einsum_bias = _d("pointwise_einsum_bias", POINTWISE, _pointwise_einsum_bias, ["b", "K"])
affine_dbeta_missing_w = _d("affine_dbeta_missing_w", CHAN_AFFINE, _affine_dbeta_missing_w, ["beta"])
affine_dgamma_per_pixel = _d("affine_dgamma_per_pixel", CHAN_AFFINE, _affine_dgamma_per_pixel, ["gamma"])
softmax_diagonal = _d("softmax_diagonal", SOFTMAX, _softmax_diagonal)
softmax_jacobian = _d("softmax_jacobian", SOFTMAX, _softmax_jacobian)
log_softmax_diagonal = _d("log_softmax_diagonal", LOG_SOFTMAX, _log_softmax_diagonal)
smooth_assigned = _d("smooth_assigned", SMOOTH, _smooth_assigned)
smooth_rolled = _d("smooth_rolled", SMOOTH, _smooth_rolled)
circ_conv_assigned = _d("circ_conv_assigned", CIRC_CONV, _circ_conv_assigned, ["X"])
upsample_first = _d("upsample_first", UPSAMPLE, _upsample_first)
upsample_added = _d("upsample_added", UPSAMPLE, _upsample_added)
upsample2d_strided = _d("upsample2d_strided", UPSAMPLE2D, _upsample2d_strided)
prefix_sum_window = _d("prefix_sum_window", PREFIX_SUM, _prefix_sum_window)
prefix_sum_loop = _d("prefix_sum_loop", PREFIX_SUM, _prefix_sum_loop)
leaky_truncated_bptt = _d("leaky_truncated_bptt", LEAKY, _leaky_truncated_bptt)

EXPECT = {
    "attention_no_sqrt": {"Q": ("scale", {"scale_form": "√D"})},
    "attention_over_d": {"K": ("scale", {"scale_form": "1/√D"})},
    "variance_biased": {"x": ("scale", {"scale_form": "(N−1)/N"})},
    "variance_unnormalised": {"x": ("scale", {"scale_form": "N−1"})},
    "pointwise_db_per_pixel": {"b": ("missing_sum", {"sum_over_axes": [1, 2]})},
    "pointwise_db_per_row": {"b": ("missing_sum", {"sum_over_axes": [1]})},
    "affine_dbeta_missing_w": {"beta": ("missing_sum", {"sum_over_axes": [1]})},
    "affine_dgamma_per_pixel": {"gamma": ("missing_sum", {"sum_over_axes": [1, 2]})},
    "softmax_diagonal": {"X": ("jacobian_diagonal", {})},
    "log_softmax_diagonal": {"X": ("jacobian_diagonal", {})},
    "smooth_assigned": {"X": ("assignment", {"windows": 2})},
    "circ_conv_assigned": {"X": ("assignment", {})},
    "upsample_first": {"X": ("subsample", {"block": 2})},
    "upsample2d_strided": {"X": ("subsample", {"block": 4})},
    "prefix_sum_window": {"X": ("truncation", {"dim": "T", "right_up_to": 3})},
    "leaky_truncated_bptt": {"X": ("truncation", {"dim": "T", "right_up_to": 3})},
}
EQUIVALENT = ("attention_power", "variance_centered_sum", "pointwise_einsum_bias", "softmax_jacobian", "smooth_rolled",
              "upsample_added", "prefix_sum_loop")
