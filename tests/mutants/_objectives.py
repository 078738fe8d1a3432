"""Small correct derivations the mutants are built on, besides the built-ins (glossary: ``analytic/__init__.py``).

    affine       layer  out = X W + 1 bᵀ           X:(N, D), W:(D, M), b:(M,), out:(N, M)
                 ∂f/∂X = G Wᵀ,  ∂f/∂W = Xᵀ G,  ∂f/∂b = 1ᵀ G
    tanh_layer   layer  out = tanh(X W + 1 bᵀ)     same shapes; with P = G ⊙ (1 − out²):
                 ∂f/∂X = P Wᵀ,  ∂f/∂W = Xᵀ P,  ∂f/∂b = 1ᵀ P
    bilinear     f = xᵀ A y                        x:(D,), A:(D, D), y:(D,)
                 ∂f/∂A = x yᵀ,  ∂f/∂x = A y,  ∂f/∂y = Aᵀ x
    quadratic    f = xᵀ A x                        x:(D,), A:(D, D)
                 ∂f/∂A = x xᵀ,  ∂f/∂x = (A + Aᵀ) x
    relu_gate    f = Σ max(A, 0) ⊙ C               A, C:(N, M)
                 ∂f/∂A = C ⊙ [A > 0],  ∂f/∂C = max(A, 0)
    mean_sq      f = (1/N) ‖X W − Y‖²_F            X:(N, D), W:(D, M), Y:(N, M)
                 ∂f/∂W = (2/N) Xᵀ (X W − Y),  ∂f/∂X = (2/N) (X W − Y) Wᵀ
    logistic     f = Σ log(1 + exp(−y ⊙ X w))      X:(N, D), w:(D,), y:(N,)
                 ∂f/∂w = −Xᵀ (y ⊙ σ(−y ⊙ X w))
    channel_gain f = ‖X diag(g)‖²_F                X:(N, 3), g:(3,) (three colour channels)
                 ∂f/∂X = 2 X diag(g²),  ∂f/∂g = 2 g ⊙ 1ᵀ(X ⊙ X)
"""

import numpy as np

from verigrad import Derivation


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# Each objective: forward, correct gradients, and the Derivation's keyword arguments.
def affine_forward(xp, X, W, b):
    return X @ W + b


def affine_gradients(X, W, b, grad_output):
    G = grad_output
    return {"X": G @ W.T, "W": X.T @ G, "b": G.sum(axis=0)}


AFFINE = {"shapes": {"X": ("N", "D"), "W": ("D", "M"), "b": ("M",)}, "forward": affine_forward, "output": ("N", "M")}


def tanh_forward(xp, X, W, b):
    return xp.tanh(X @ W + b)


def tanh_gradients(X, W, b, grad_output):
    P = grad_output * (1.0 - np.tanh(X @ W + b) ** 2)
    return {"X": P @ W.T, "W": X.T @ P, "b": P.sum(axis=0)}


TANH = {"shapes": {"X": ("N", "D"), "W": ("D", "M"), "b": ("M",)}, "forward": tanh_forward, "output": ("N", "M")}


def bilinear_forward(xp, x, A, y):
    return x @ A @ y


def bilinear_gradients(x, A, y):
    return {"A": np.outer(x, y), "x": A @ y, "y": A.T @ x}


BILINEAR = {"shapes": {"x": ("D",), "A": ("D", "D"), "y": ("D",)}, "forward": bilinear_forward}


def quadratic_forward(xp, x, A):
    return x @ A @ x


def quadratic_gradients(x, A):
    return {"A": np.outer(x, x), "x": (A + A.T) @ x}


QUADRATIC = {"shapes": {"x": ("D",), "A": ("D", "D")}, "forward": quadratic_forward}


def relu_gate_forward(xp, A, C):
    return xp.sum(A * (A > 0) * C)


def relu_gate_gradients(A, C):
    return {"A": C * (A > 0), "C": np.maximum(A, 0.0)}


RELU_GATE = {"shapes": {"A": ("N", "M"), "C": ("N", "M")}, "forward": relu_gate_forward, "kinks": lambda xp, A, C: [A]}


def mean_sq_forward(xp, X, W, Y):
    return xp.sum((X @ W - Y) ** 2) / X.shape[0]


def mean_sq_gradients(X, W, Y):
    r = X @ W - Y
    n = X.shape[0]
    return {"W": 2.0 / n * X.T @ r, "X": 2.0 / n * r @ W.T, "Y": -2.0 / n * r}


MEAN_SQ = {"shapes": {"X": ("N", "D"), "W": ("D", "M"), "Y": ("N", "M")}, "forward": mean_sq_forward}


def logistic_forward(xp, X, w, y):
    return xp.sum(xp.log(1.0 + xp.exp(-y * (X @ w))))


def logistic_gradients(X, w, y):
    z = X @ w
    return {"w": -X.T @ (y * sigmoid(-y * z)), "X": -np.outer(y * sigmoid(-y * z), w), "y": -z * sigmoid(-y * z)}


LOGISTIC = {"shapes": {"X": ("N", "D"), "w": ("D",), "y": ("N",)}, "forward": logistic_forward}


def channel_gain_forward(xp, X, g):
    return xp.sum((X * g) ** 2)


def channel_gain_gradients(X, g):
    return {"X": 2.0 * X * g**2, "g": 2.0 * g * (X * X).sum(axis=0)}


CHANNEL_GAIN = {"shapes": {"X": ("N", 3), "g": (3,)}, "forward": channel_gain_forward}

CORRECT = [
    Derivation(name="affine", gradients=affine_gradients, **AFFINE),
    Derivation(name="tanh_layer", gradients=tanh_gradients, **TANH),
    Derivation(name="bilinear", gradients=bilinear_gradients, **BILINEAR),
    Derivation(name="quadratic", gradients=quadratic_gradients, **QUADRATIC),
    Derivation(name="relu_gate", gradients=relu_gate_gradients, **RELU_GATE),
    Derivation(name="mean_sq", gradients=mean_sq_gradients, **MEAN_SQ),
    Derivation(name="logistic", gradients=logistic_gradients, **LOGISTIC),
    Derivation(name="channel_gain", gradients=channel_gain_gradients, **CHANNEL_GAIN),
]
