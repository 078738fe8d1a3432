"""Wrong (and equivalent) derivations as real code writes them: a gradient with the right values and a length-1
axis too many ((1, M), (M, 1), (1, C, 1, 1) for a vector), and backward passes that write into grad_output
(``dx = dout; dx[x <= 0] = 0``), right or wrong. Objectives in ``_objectives.py``, but the ReLU layer here."""

from verigrad import Derivation

from ._objectives import AFFINE, CHAN_AFFINE, LOGISTIC, logistic_gradients

# --- affine layer: out = X W + 1 bᵀ ------------------------------------------------------------------


def _affine_db_keepdims(X, W, b, grad_output):
    return {"b": grad_output.sum(axis=0, keepdims=True)}  # slip: (1, M) instead of (M,)


def _affine_db_keepdims_dropped(X, W, b, grad_output):
    return {"b": grad_output.sum(axis=0, keepdims=True)[0]}  # equivalent: the kept axis taken away again


# --- logistic regression: f = Σ log(1 + exp(−y ⊙ X w)) ---------------------------------------------------


def _logistic_dw_column(X, w, y):
    return {"w": logistic_gradients(X, w, y)["w"][:, None]}  # slip: a column (D, 1) where w is (D,)


# --- channel affine (batch norm's γ, β) -----------------------------------------------------------------------


def _chan_dgamma_keepdims(X, gamma, beta, grad_output):
    return {"gamma": (grad_output * X).sum(axis=(0, 2, 3), keepdims=True)}  # slip: (1, C, 1, 1) instead of (C,)


# --- ReLU layer: out = max(X, 0), its backward written into grad_output -----------------------------------


def relu_forward(xp, X):
    return xp.maximum(X, 0.0)


RELU = {"shapes": {"X": ("N", "D")}, "forward": relu_forward, "output": ("N", "D"), "kinks": lambda xp, X: [X]}


def _relu_into_dout(X, grad_output):
    dx = grad_output  # equivalent, though it changes its caller's grad_output (a warning says so)
    dx[X <= 0] = 0.0
    return {"X": dx}


def _relu_into_dout_doubled(X, grad_output):
    dx = grad_output
    dx[X <= 0] = 0.0
    dx *= 2.0  # slip: a factor 2 from nowhere, written into grad_output as well
    return {"X": dx}


def _d(name, spec, gradients, check=None):
    return Derivation(name=name, gradients=gradients, check=check, **spec)


affine_db_keepdims = _d("affine_db_keepdims", AFFINE, _affine_db_keepdims, ["b"])
affine_db_keepdims_dropped = _d("affine_db_keepdims_dropped", AFFINE, _affine_db_keepdims_dropped, ["b"])
logistic_dw_column = _d("logistic_dw_column", LOGISTIC, _logistic_dw_column, ["w"])
chan_dgamma_keepdims = _d("chan_dgamma_keepdims", CHAN_AFFINE, _chan_dgamma_keepdims, ["gamma"])
relu_into_dout = _d("relu_into_dout", RELU, _relu_into_dout)
relu_into_dout_doubled = _d("relu_into_dout_doubled", RELU, _relu_into_dout_doubled)

EXPECT = {
    "affine_db_keepdims": {"b": ("kept_axis", {"kept_axes": [0]})},
    "logistic_dw_column": {"w": ("kept_axis", {"kept_axes": [1]})},
    "chan_dgamma_keepdims": {"gamma": ("kept_axis", {"kept_axes": [0, 2, 3]})},
    "relu_into_dout_doubled": {"X": ("scale", {"scale_factor": 2.0})},
}
EQUIVALENT = ("affine_db_keepdims_dropped", "relu_into_dout")

#: The derivations above whose gradients write into grad_output: each report warns of it (tests/test_friendly.py).
WRITES_INTO_GRAD_OUTPUT = ("relu_into_dout", "relu_into_dout_doubled")
