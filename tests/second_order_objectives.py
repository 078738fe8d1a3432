"""Hand-derived Hessian-vector products of the seed's objectives, and planted slips (tests/test_second_order.py).

Logistic-style loss (tests/mutants/_objectives.py), over w and X (y held fixed)::

    z = X w,  m = y ⊙ z,  f = Σ ℓ(m),  ℓ(m) = log(1 + e^−m)        X:(N, D), w:(D,), y:(N,)
    ℓ'(m) = −σ(−m),  ℓ''(m) = σ(m) σ(−m)
    ∂f/∂w = Xᵀ (y ⊙ ℓ'),   ∂f/∂X = (y ⊙ ℓ') wᵀ
    along v = (v_w, v_X):  δm = y ⊙ (v_X w + X v_w)
    (H·v)_w = v_Xᵀ (y ⊙ ℓ') + Xᵀ (y ⊙ ℓ'' ⊙ δm)                      (D,)
    (H·v)_X = (y ⊙ ℓ'' ⊙ δm) wᵀ + (y ⊙ ℓ') v_wᵀ                      (N, D)

Two-layer sigmoid network (analytic/two_layer_sigmoid.py), over W1, b1, W2, b2 (X, Y held fixed)::

    h = X W1 + 1 b1ᵀ,  s = σ(h),  P = s W2 + 1 b2ᵀ,  f = ‖P − Y‖²_F
    s' = s ⊙ (1 − s),  s'' = s' ⊙ (1 − 2 s)
    along v:  δh = X V1 + 1 c1ᵀ,  δs = s' ⊙ δh,  δP = δs W2 + s V2 + 1 c2ᵀ
    δ(∂f/∂P) = 2 δP,  ∂f/∂s = 2 (P − Y) W2ᵀ
    (H·v)_W2 = δsᵀ 2(P − Y) + sᵀ 2 δP,   (H·v)_b2 = 1ᵀ 2 δP
    δ(∂f/∂s) = 2 δP W2ᵀ + 2 (P − Y) V2ᵀ
    δ(∂f/∂h) = δ(∂f/∂s) ⊙ s' + ∂f/∂s ⊙ s'' ⊙ δh
    (H·v)_W1 = Xᵀ δ(∂f/∂h),   (H·v)_b1 = 1ᵀ δ(∂f/∂h)

Quadratic form f = xᵀ A x + ‖A‖²_F / 2 (a square matrix, for a transposed term)::

    ∂f/∂x = (A + Aᵀ) x,   ∂f/∂A = x xᵀ + A
    (H·v)_x = (A + Aᵀ) v_x + (v_A + v_Aᵀ) x,   (H·v)_A = v_x xᵀ + x v_xᵀ + v_A
"""

from functools import partial

import numpy as np

from verigrad import Derivation
from verigrad.analytic import two_layer_sigmoid as tls


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# --- logistic ------------------------------------------------------------------------------------------
def logistic_forward(xp, X, w, y):
    return xp.sum(xp.log(1.0 + xp.exp(-y * (X @ w))))


def logistic_gradients(X, w, y):
    lp = -sigmoid(-y * (X @ w))
    return {"w": X.T @ (y * lp), "X": np.outer(y * lp, w)}


def logistic_hvp(v, X, w, y, *, cross=True, factor=1.0):
    m = y * (X @ w)
    lp, lpp = -sigmoid(-m), sigmoid(m) * sigmoid(-m)
    dm = y * (v["X"] @ w + X @ v["w"])
    hw = X.T @ (y * lpp * dm) + (v["X"].T @ (y * lp) if cross else 0.0)
    hX = np.outer(y * lpp * dm, w) + (np.outer(y * lp, v["w"]) if cross else 0.0)
    return {"w": factor * hw, "X": hX}


def logistic(name="logistic_hvp", hvp=logistic_hvp, **kw):
    """The logistic derivation over w and X with ``hvp``; ``kw``: more of Derivation's arguments (a forward, namespaces)."""
    args = {"forward": logistic_forward, "gradients": logistic_gradients, "check": ["w", "X"], **kw}
    return Derivation(name=name, shapes={"X": ("N", "D"), "w": ("D",), "y": ("N",)}, hvp=hvp, **args)


# --- two-layer sigmoid network ---------------------------------------------------------------------------
def two_layer_hvp(v, X, W1, b1, W2, b2, Y, *, activation_curvature=True):
    s = sigmoid(X @ W1 + b1)
    P = s @ W2 + b2
    s1 = s * (1.0 - s)
    s2 = s1 * (1.0 - 2.0 * s)
    dh = X @ v["W1"] + v["b1"]
    ds = s1 * dh
    dP = ds @ W2 + s @ v["W2"] + v["b2"]
    g_s = 2.0 * (P - Y) @ W2.T
    d_gs = 2.0 * dP @ W2.T + 2.0 * (P - Y) @ v["W2"].T
    d_gh = d_gs * s1 + (g_s * s2 * dh if activation_curvature else 0.0)
    return {"W1": X.T @ d_gh, "b1": d_gh.sum(axis=0), "W2": ds.T @ (2.0 * (P - Y)) + s.T @ (2.0 * dP), "b2": 2.0 * dP.sum(axis=0)}


def two_layer(name="two_layer_sigmoid_hvp", **hvp_kw):
    hvp = partial(two_layer_hvp, **hvp_kw)
    return Derivation(name=name, shapes=tls.SHAPES, forward=tls.forward, gradients=tls.gradients, check=["W1", "b1", "W2", "b2"], hvp=hvp)


# --- quadratic form with a square matrix --------------------------------------------------------------------
def quad_forward(xp, A, x):
    return x @ (A @ x) + xp.sum(A * A) / 2


def quad_gradients(A, x):
    return {"x": (A + A.T) @ x, "A": np.outer(x, x) + A}


def quad_hvp(v, A, x, *, transposed=False):
    hx = (A + A.T) @ v["x"] + (2 * v["A"] @ x if transposed else (v["A"] + v["A"].T) @ x)
    return {"x": hx, "A": np.outer(v["x"], x) + np.outer(x, v["x"]) + v["A"]}


def quadratic(name="quadratic_hvp", **hvp_kw):
    hvp = partial(quad_hvp, **hvp_kw)
    return Derivation(name=name, shapes={"A": ("D", "D"), "x": ("D",)}, forward=quad_forward, gradients=quad_gradients, hvp=hvp)
