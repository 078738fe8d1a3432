"""A second held-out set, written after the diagnosis was revised and run once (see tests/heldout_mutants.py).

Run: ``python tests/heldout_mutants_2.py``. Not collected by pytest.

First run: 6 of 7. The miss, a ReLU mask of the wrong sign in ∂f/∂W = Xᵀ(2r ⊙ [h < 0]), is reported
``unknown``: summed over the batch the wrong mask spoils every entry of ∂f/∂W, so the error is not
``partial`` at the level of W's entries; naming the mask there would need the pattern to be sought in
∂f/∂h, which the checker does not see.
"""

import numpy as np

from verigrad.analytic import Derivation, builtin

try:
    from tests.heldout_mutants import score
except ImportError:  # run as a script from tests/
    from heldout_mutants import score

EXAMPLES = 20
SEED = 4321


def based(name: str, wrong, check: list[str], new_name: str) -> Derivation:
    d = builtin(name)
    return Derivation(name=new_name, shapes=d.shapes, forward=d.forward, gradients=wrong, output=d.output, check=check, kinks=d.kinks)


# 1. two-layer sigmoid: ∂f/∂W2 with the residual taken as Y − Y_pred (sign flipped).
def sig_w2_sign(X, W1, b1, W2, b2, Y):
    s = 1 / (1 + np.exp(-(X @ W1 + b1)))
    return {"W2": s.T @ (2 * (Y - (s @ W2 + b2)))}


# 2. softmax cross-entropy: the 1/N of the batch mean forgotten in ∂f/∂Z.
def ce_no_mean(Z, T):
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    S = e / e.sum(axis=1, keepdims=True)
    return {"Z": S * T.sum(axis=1, keepdims=True) - T}


# 3. linear layer: ∂f/∂X returned as W Gᵀ (the transpose of G Wᵀ).
def lin_dx_transposed(X, W, b, grad_output):
    return {"X": W @ grad_output.T}


# 4. layer norm: ∂f/∂β returned per sample (G itself).
def ln_beta_per_sample(X, gamma, beta, grad_output):
    return {"beta": grad_output}


# 5. ReLU regression: the mask taken on X W > 0 … of the wrong sign (h < 0).
def relu_mask_flipped(X, W, Y):
    h = X @ W
    r = np.maximum(h, 0) - Y
    return {"W": X.T @ (2 * r * (h < 0))}


# 6. tanh regression: the gradient function indexes a row that exists only when N ≥ 2.
def tanh_index(X, W, Y):
    h = X @ W
    dh = 2 * (np.tanh(h) - Y) * (1 - np.tanh(h) ** 2)
    dh[1] += 0.0
    return {"W": X.T @ dh}


# 7. leaky ReLU regression: ∂f/∂W with an extra column of zeros appended.
def leaky_extra_col(X, W, Y):
    h = X @ W
    dh = 2 * (np.where(h > 0, h, 0.01 * h) - Y) * np.where(h > 0, 1.0, 0.01)
    g = X.T @ dh
    return {"W": np.concatenate([g, np.zeros((g.shape[0], 1))], axis=1)}


CASES = [
    (based("two_layer_sigmoid", sig_w2_sign, ["W2"], "sig_w2_sign"), "W2", "sign_flip"),
    (based("softmax_cross_entropy", ce_no_mean, ["Z"], "ce_no_mean"), "Z", "scale"),
    (based("linear_layer", lin_dx_transposed, ["X"], "lin_dx_transposed"), "X", "transpose"),
    (based("layer_norm", ln_beta_per_sample, ["beta"], "ln_beta_per_sample"), "beta", "missing_batch_sum"),
    (based("relu_regression", relu_mask_flipped, ["W"], "relu_mask_flipped"), "W", "partial"),
    (based("tanh_regression", tanh_index, ["W"], "tanh_index"), "W", "raised"),
    (based("leaky_relu_regression", leaky_extra_col, ["W"], "leaky_extra_col"), "W", "shape_mismatch"),
]


def main() -> int:
    return score(CASES, EXAMPLES, SEED)


if __name__ == "__main__":
    main()
