"""Wrong (and equivalent) derivations of the small objectives in ``_objectives.py``."""

import numpy as np

from verigrad import Derivation

from ._objectives import AFFINE, BILINEAR, CHANNEL_GAIN, LOGISTIC, MEAN_SQ, QUADRATIC, RELU_GATE, TANH, sigmoid


# --- affine layer: out = X W + 1 bᵀ ------------------------------------------------------------------
def _affine_sign_dX(X, W, b, grad_output):
    return {"X": -grad_output @ W.T}  # slip: a minus sign from nowhere


def _affine_db_per_sample(X, W, b, grad_output):
    return {"b": grad_output}  # slip: ∂f/∂b not summed over the batch


def _affine_db_wrong_axis(X, W, b, grad_output):
    return {"b": grad_output.sum(axis=1)}  # slip: summed over the features instead of the batch


def _affine_dW_untransposed(X, W, b, grad_output):
    return {"W": X @ grad_output}  # slip: X where Xᵀ belongs


def _affine_einsum(X, W, b, grad_output):
    G = grad_output  # equivalent: the same contractions, spelled differently
    return {"X": np.einsum("nm,dm->nd", G, W), "W": np.einsum("nd,nm->dm", X, G), "b": np.ones(len(X)) @ G}


# --- tanh layer: out = tanh(X W + 1 bᵀ) ---------------------------------------------------------------
def _tanh_one_minus_out(X, W, b, grad_output):
    P = grad_output * (1.0 - np.tanh(X @ W + b))  # slip: tanh' written 1 − out instead of 1 − out²
    return {"W": X.T @ P, "X": P @ W.T}


def _tanh_db_not_summed(X, W, b, grad_output):
    return {"b": grad_output * (1.0 - np.tanh(X @ W + b) ** 2)}  # slip: per-sample ∂f/∂b


def _tanh_cosh(X, W, b, grad_output):
    P = grad_output / np.cosh(X @ W + b) ** 2  # equivalent: 1 − tanh² = sech²
    return {"X": P @ W.T, "W": X.T @ P, "b": P.sum(axis=0)}


# --- bilinear: f = xᵀ A y -----------------------------------------------------------------------------
def _bilinear_dA_transposed(x, A, y):
    return {"A": np.outer(y, x)}  # slip: y xᵀ instead of x yᵀ


def _bilinear_dy_sign(x, A, y):
    return {"y": -(A.T @ x)}  # slip


# --- quadratic form: f = xᵀ A x -----------------------------------------------------------------------
def _quadratic_2Ax(x, A):
    return {"x": 2.0 * A @ x}  # slip: (A + Aᵀ) x taken as 2 A x, true only for symmetric A


def _quadratic_dA_squares(x, A):
    return {"A": x * x}  # slip: the diagonal of x xᵀ, not the outer product


def _quadratic_symmetric_form(x, A):
    return {"A": x[:, None] * x[None, :], "x": A @ x + A.T @ x}  # equivalent


# --- relu gate: f = Σ max(A, 0) ⊙ C -------------------------------------------------------------------
def _gate_no_mask(A, C):
    return {"A": C}  # slip: the ReLU derivative forgotten


def _gate_mask_on_C(A, C):
    return {"A": C * (C > 0)}  # slip: the mask taken on the wrong tensor


def _gate_mask_ge(A, C):
    return {"A": np.where(A >= 0, C, 0.0), "C": np.where(A > 0, A, 0.0)}  # equivalent off the kink


# --- mean squared error over the batch: f = (1/N) ‖X W − Y‖²_F -----------------------------------------
def _mean_sq_no_mean(X, W, Y):
    return {"W": 2.0 * X.T @ (X @ W - Y)}  # slip: the 1/N of the mean forgotten


def _mean_sq_mean_twice(X, W, Y):
    n = X.shape[0]
    return {"W": 2.0 / n**2 * X.T @ (X @ W - Y)}  # slip: divided by N twice


def _mean_sq_transposed_back(X, W, Y):
    n = X.shape[0]
    dW = 2.0 / n * X.T @ (X @ W - Y)
    return {"W": dW.T.reshape(dW.shape)}  # slip: the transposed array reshaped back into (D, M)


def _mean_sq_flattened(X, W, Y):
    n = X.shape[0]
    return {"W": (2.0 / n * X.T @ (X @ W - Y)).ravel()}  # slip: flattened to (D·M,)


# --- logistic loss: f = Σ log(1 + exp(−y ⊙ X w)) -----------------------------------------------------
def _logistic_sign(X, w, y):
    return {"w": X.T @ (y * sigmoid(-y * (X @ w)))}  # slip: the minus of d log(1 + e^−u)/du lost


def _logistic_typo(X, w, y):
    return {"w": -X.T @ (y * sigmoid(-y * (X @ w))), "y": -(X @ w) * sigmoid(-(X @ w) * y)[len(y)]}  # slip: indexing bug


# --- channel gain: f = ‖X diag(g)‖²_F with three channels ---------------------------------------------
def _gain_channel_typo(X, g):
    return {"X": 2.0 * X * g[[0, 1, 1]] ** 2}  # slip: channel 2 reads channel 1's gain


def _gain_vectorised(X, g):
    return {"X": 2.0 * X * (g * g)[None, :], "g": 2.0 * np.einsum("nc,nc->c", X, X) * g}  # equivalent


def _d(name, spec, gradients, check=None):
    return Derivation(name=name, gradients=gradients, check=check, **spec)


affine_sign_dX = _d("affine_sign_dX", AFFINE, _affine_sign_dX, ["X"])
affine_db_per_sample = _d("affine_db_per_sample", AFFINE, _affine_db_per_sample, ["b"])
affine_db_wrong_axis = _d("affine_db_wrong_axis", AFFINE, _affine_db_wrong_axis, ["b"])
affine_dW_untransposed = _d("affine_dW_untransposed", AFFINE, _affine_dW_untransposed, ["W"])
affine_einsum = _d("affine_einsum", AFFINE, _affine_einsum)
tanh_one_minus_out = _d("tanh_one_minus_out", TANH, _tanh_one_minus_out, ["W", "X"])
tanh_db_not_summed = _d("tanh_db_not_summed", TANH, _tanh_db_not_summed, ["b"])
tanh_cosh = _d("tanh_cosh", TANH, _tanh_cosh)
bilinear_dA_transposed = _d("bilinear_dA_transposed", BILINEAR, _bilinear_dA_transposed, ["A"])
bilinear_dy_sign = _d("bilinear_dy_sign", BILINEAR, _bilinear_dy_sign, ["y"])
quadratic_2Ax = _d("quadratic_2Ax", QUADRATIC, _quadratic_2Ax, ["x"])
quadratic_dA_squares = _d("quadratic_dA_squares", QUADRATIC, _quadratic_dA_squares, ["A"])
quadratic_symmetric_form = _d("quadratic_symmetric_form", QUADRATIC, _quadratic_symmetric_form)
gate_no_mask = _d("gate_no_mask", RELU_GATE, _gate_no_mask, ["A"])
gate_mask_on_C = _d("gate_mask_on_C", RELU_GATE, _gate_mask_on_C, ["A"])
gate_mask_ge = _d("gate_mask_ge", RELU_GATE, _gate_mask_ge)
mean_sq_no_mean = _d("mean_sq_no_mean", MEAN_SQ, _mean_sq_no_mean, ["W"])
mean_sq_mean_twice = _d("mean_sq_mean_twice", MEAN_SQ, _mean_sq_mean_twice, ["W"])
mean_sq_transposed_back = _d("mean_sq_transposed_back", MEAN_SQ, _mean_sq_transposed_back, ["W"])
mean_sq_flattened = _d("mean_sq_flattened", MEAN_SQ, _mean_sq_flattened, ["W"])
logistic_sign = _d("logistic_sign", LOGISTIC, _logistic_sign, ["w"])
logistic_typo = _d("logistic_typo", LOGISTIC, _logistic_typo, ["w", "y"])
gain_channel_typo = _d("gain_channel_typo", CHANNEL_GAIN, _gain_channel_typo, ["X"])
gain_vectorised = _d("gain_vectorised", CHANNEL_GAIN, _gain_vectorised)

EXPECT = {
    "affine_sign_dX": {"X": ("sign_flip", {})},
    "affine_db_per_sample": {"b": ("missing_batch_sum", {"keepdims": False})},
    "affine_db_wrong_axis": {"b": ("missing_batch_sum", {})},
    "affine_dW_untransposed": {"W": ("raised", {})},
    "tanh_one_minus_out": {"W": ("unknown", {}), "X": ("unknown", {})},
    "tanh_db_not_summed": {"b": ("missing_batch_sum", {"keepdims": False})},
    "bilinear_dA_transposed": {"A": ("transpose", {"layout": "transposed"})},
    "bilinear_dy_sign": {"y": ("sign_flip", {})},
    "quadratic_2Ax": {"x": ("unknown", {})},
    "quadratic_dA_squares": {"A": ("shape_mismatch", {})},
    "gate_no_mask": {"A": ("partial", {"pattern": "kinks()[0] ≤ 0"})},
    "gate_mask_on_C": {"A": ("unknown", {"unconfirmed": {"partial": 0}})},  # 1 entry: right or wrong per draw
    "mean_sq_no_mean": {"W": ("scale", {"scale_form": "N", "scale_factor": lambda s: s["N"]})},
    "mean_sq_mean_twice": {"W": ("scale", {"scale_form": "1/N", "scale_factor": lambda s: 1 / s["N"]})},
    "mean_sq_transposed_back": {"W": ("transpose", {})},  # at D = M it is a plain transpose
    "mean_sq_flattened": {"W": ("transpose", {"layout": "reshaped"})},
    "logistic_sign": {"w": ("sign_flip", {})},
    "logistic_typo": {"w": ("raised", {}), "y": ("raised", {})},
    "gain_channel_typo": {"X": ("partial", {"pattern": "columns [2]"})},
}
EQUIVALENT = ("affine_einsum", "tanh_cosh", "quadratic_symmetric_form", "gate_mask_ge", "gain_vectorised")


def _mean_sq_data_factor(X, W, Y):
    n = X.shape[0]
    dW = 2.0 / n * X.T @ (X @ W - Y)
    return {"W": dW * (1.0 + abs(X[0, 0]))}  # not a slip anyone makes: a factor that changes with the data


def _mean_sq_minus_two(X, W, Y):
    n = X.shape[0]
    return {"W": -4.0 / n * X.T @ (X @ W - Y)}  # slip: both the sign and the 2 of the square doubled up


mean_sq_data_factor = _d("mean_sq_data_factor", MEAN_SQ, _mean_sq_data_factor, ["W"])
mean_sq_minus_two = _d("mean_sq_minus_two", MEAN_SQ, _mean_sq_minus_two, ["W"])
EXPECT["mean_sq_data_factor"] = {"W": ("unknown", {})}
EXPECT["mean_sq_minus_two"] = {"W": ("scale", {"scale_factor": -2.0, "scale_form": "−2"})}
