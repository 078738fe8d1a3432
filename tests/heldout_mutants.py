"""Held-out wrong derivations, written after the diagnosis was final and run once to measure it honestly.

Run: ``python tests/heldout_mutants.py`` (prints one line per case and the score). Not collected by pytest.
"""

import numpy as np

from verigrad import Derivation, checks

#: Same budget and seed as the tuned corpus (tests/test_diagnose.py).
EXAMPLES = 20
SEED = 1234


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# 1. softplus regression f = Σ (softplus(X w) − y)²; slip: softplus' written as exp(z) instead of σ(z).
def sp_forward(xp, X, w, y):
    z = X @ w
    return xp.sum((xp.log(1.0 + xp.exp(z)) - y) ** 2)


def sp_wrong(X, w, y):
    z = X @ w
    r = np.log1p(np.exp(z)) - y
    return {"w": X.T @ (2.0 * r * np.exp(z))}


# 2. leaky ReLU f = Σ leaky(A) ⊙ C, slope 0.1; slip: negative-side slope forgotten (0 instead of 0.1).
def leaky_forward(xp, A, C):
    return xp.sum(xp.where(A > 0, A, 0.1 * A) * C)


def leaky_wrong(A, C):
    return {"A": C * (A > 0)}


# 3. linear layer: out = X W (layer, no bias); slip: ∂f/∂W = Gᵀ X (transposed product).
def lin_forward(xp, X, W):
    return X @ W


def lin_wrong(X, W, grad_output):
    return {"W": grad_output.T @ X}


# 4. scaled dot product f = Σ (Q Kᵀ) / √D; slip: the 1/√D forgotten in ∂f/∂Q.
def dot_forward(xp, Q, K):
    return xp.sum(Q @ K.T) / Q.shape[1] ** 0.5


def dot_wrong(Q, K):
    return {"Q": np.ones((Q.shape[0], K.shape[0])) @ K}


# 5. elementwise gain layer out = X ⊙ g + c, g, c:(M,); slip: ∂f/∂c summed over the features.
def gain_forward(xp, X, g, c):
    return X * g + c


def gain_wrong(X, g, c, grad_output):
    return {"c": grad_output.sum(axis=1), "g": (grad_output * X).sum(axis=0)}


# 6. cubic f = Σ x³ a, x:(D,), a:(D,); slip: derivative 3x² a written with a minus sign.
def cubic_forward(xp, x, a):
    return xp.sum(x**3 * a)


def cubic_wrong(x, a):
    return {"x": -3.0 * x**2 * a}


# 7. Frobenius regulariser f = ½‖W‖²_F + ‖X W‖²_F; slip: the 2 of the data term dropped (not a constant factor overall).
def reg_forward(xp, X, W):
    return 0.5 * xp.sum(W * W) + xp.sum((X @ W) ** 2)


def reg_wrong(X, W):
    return {"W": W + X.T @ (X @ W)}


# 8. projection on a fixed-size vector: f = Σ (X @ v)², v:(4,); slip: ∂f/∂v returned per sample.
def rowdot_forward(xp, X, v):
    return xp.sum((X @ v) ** 2)


def rowdot_wrong(X, v):
    return {"v": 2.0 * (X @ v)[:, None] * X}


# 9. hinge f = Σ max(0, 1 − y ⊙ X w); slip: mask taken as [y X w > 0] instead of [1 − y X w > 0].
def hinge_forward(xp, X, w, y):
    m = 1.0 - y * (X @ w)
    return xp.sum(m * (m > 0))


def hinge_wrong(X, w, y):
    z = y * (X @ w)
    return {"w": -X.T @ (y * (z > 0))}


# 10. softsign f = Σ x / (1 + |x|) ⊙ a; slip: derivative returned with shape (1, D).
def softsign_forward(xp, x, a):
    return xp.sum(x / (1.0 + xp.abs(x)) * a)


def softsign_wrong(x, a):
    return {"x": (a / (1.0 + np.abs(x)) ** 2)[None, :]}


CASES = [
    (Derivation(name="softplus_exp", shapes={"X": ("N", "D"), "w": ("D",), "y": ("N",)}, forward=sp_forward, gradients=sp_wrong,
                check=["w"]), "w", "unknown"),
    (Derivation(name="leaky_no_slope", shapes={"A": ("N", "M"), "C": ("N", "M")}, forward=leaky_forward, gradients=leaky_wrong, check=["A"],
                kinks=lambda xp, A, C: [A]), "A", "partial"),
    (Derivation(name="linear_Gt_X", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=lin_forward, gradients=lin_wrong, output=("N", "M"),
                check=["W"]),
     "W", "transpose"),
    (Derivation(name="dot_no_sqrt", shapes={"Q": ("N", "D"), "K": ("L", "D")}, forward=dot_forward, gradients=dot_wrong, check=["Q"]), "Q", "scale"),
    (Derivation(name="gain_bias_axis", shapes={"X": ("N", "M"), "g": ("M",), "c": ("M",)}, forward=gain_forward, gradients=gain_wrong,
                output=("N", "M"), check=["c"]), "c", "missing_batch_sum"),
    (Derivation(name="cubic_sign", shapes={"x": ("D",), "a": ("D",)}, forward=cubic_forward, gradients=cubic_wrong, check=["x"]), "x", "sign_flip"),
    (Derivation(name="reg_half_data", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=reg_forward, gradients=reg_wrong, check=["W"]),
     "W", "unknown"),
    (Derivation(name="rowdot_per_sample", shapes={"X": ("N", 4), "v": (4,)}, forward=rowdot_forward, gradients=rowdot_wrong, check=["v"]),
     "v", "missing_batch_sum"),
    (Derivation(name="hinge_wrong_mask", shapes={"X": ("N", "D"), "w": ("D",), "y": ("N",)}, forward=hinge_forward, gradients=hinge_wrong,
                check=["w"], kinks=lambda xp, X, w, y: [1.0 - y * (X @ w)]), "w", "partial"),
    (Derivation(name="softsign_row", shapes={"x": ("D",), "a": ("D",)}, forward=softsign_forward, gradients=softsign_wrong, check=["x"],
                kinks=lambda xp, x, a: [x]), "x", "transpose"),
]


def score(cases, examples: int = EXAMPLES, seed: int = SEED) -> int:
    """Check each case, print one line per case and the score; return how many were diagnosed as expected."""
    right = 0
    for d, param, want in cases:
        report = checks.check(d, examples=examples, seed=seed, database=False)
        g = next(g for g in report.gradients if g.param == param)
        got = g.diagnosis.kind if g.diagnosis else f"<{report.status}>"
        right += got == want
        print(f"{'ok  ' if got == want else 'MISS'} {d.name}:{param} at {report.shapes}: expected {want}, got {got}: "
              f"{g.diagnosis.sentence if g.diagnosis else report.message}")
    print(f"{right} of {len(cases)} diagnosed as expected")
    return right


def main() -> int:
    return score(CASES)


if __name__ == "__main__":
    main()
