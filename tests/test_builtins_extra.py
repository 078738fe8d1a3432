"""The layer and scalar built-ins beyond the first four: each passes, and a typical mistake in each is caught."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers import altered
from verigrad import analytic
from verigrad.analytic.layer_norm import EPS
from verigrad.checks import check, draw_point
from verigrad.checks.report import Blame, Status
from verigrad.reference import autograd_gradients

NEW = ("linear_layer", "softmax", "layer_norm", "softmax_cross_entropy", "tanh_regression", "leaky_relu_regression")
LAYERS = ("linear_layer", "softmax", "layer_norm")
#: Search budget per derivation: enough to draw many shapes (incl. N = 1 and one-column cases), quick under CI.
EXAMPLES, SEED = 15, 7


def test_every_new_builtin_is_registered():
    assert set(NEW) <= set(analytic.NAMES)
    for name in NEW:
        d = analytic.builtin(name)
        assert d.name == name
        assert d.doc, f"{name} has no docstring"
        assert (name in LAYERS) == d.is_layer


@pytest.mark.parametrize("name", NEW)
def test_new_builtin_passes_the_property_search(name):
    d = analytic.builtin(name)
    report = check(d, examples=EXAMPLES, seed=SEED, database=False)
    assert report.passed, report.message
    assert report.examples == EXAMPLES
    assert {g.param for g in report.gradients} == set(d.params)


# --- one typical mistake per built-in ------------------------------------------------------------


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def _linear_mean_bias(g, p):
    return {**g, "b": p["grad_output"].mean(axis=0)}  # averaged over the batch instead of summed


def _softmax_diagonal_only(g, p):
    return {"Z": _softmax(p["Z"]) * p["grad_output"]}  # keeps the Jacobian's diagonal, drops −S Sᵀ


def _layer_norm_no_variance_path(g, p):
    X, G = p["X"], p["grad_output"]
    Xc = X - X.mean(axis=1, keepdims=True)
    rho = 1.0 / np.sqrt((Xc * Xc).mean(axis=1, keepdims=True) + EPS)
    Dh = G * p["gamma"]
    return {**g, "X": rho * (Dh - Dh.mean(axis=1, keepdims=True))}  # treats the variance as a constant


def _cross_entropy_no_mean(g, p):
    return {**g, "Z": g["Z"] * p["Z"].shape[0]}  # forgot the 1/N of the batch mean


def _tanh_unsquared(g, p):
    X, W, Y = p["X"], p["W"], p["Y"]
    t = np.tanh(X @ W)
    dh = 2.0 * (t - Y) * (1.0 - t)  # tanh' written as 1 − tanh instead of 1 − tanh²
    return {**g, "W": X.T @ dh, "X": dh @ W.T}


def _leaky_as_relu(g, p):
    X, W, Y = p["X"], p["W"], p["Y"]
    h = X @ W
    dh = 2.0 * (np.where(h > 0, h, 0.01 * h) - Y) * (h > 0)  # ReLU's mask: the negative slope is lost
    return {**g, "W": X.T @ dh, "X": dh @ W.T}


MISTAKES = {
    "linear_layer": (_linear_mean_bias, {"b"}),
    "softmax": (_softmax_diagonal_only, {"Z"}),
    "layer_norm": (_layer_norm_no_variance_path, {"X"}),
    "softmax_cross_entropy": (_cross_entropy_no_mean, {"Z"}),
    "tanh_regression": (_tanh_unsquared, {"X", "W"}),
    "leaky_relu_regression": (_leaky_as_relu, {"X", "W"}),
}


def test_every_new_builtin_has_a_planted_mistake():
    assert set(MISTAKES) == set(NEW)


@pytest.mark.parametrize("name", NEW)
def test_planted_mistake_fails_and_names_the_parameter(name):
    change, params = MISTAKES[name]
    wrong = altered(analytic.builtin(name), f"{name}_wrong", change)
    report = check(wrong, examples=EXAMPLES, seed=SEED, database=False)
    assert report.status == Status.FAIL
    assert {g.param for g in report.failures} == params
    assert all(g.blame == Blame.ANALYTIC for g in report.failures)


def test_leaky_relu_subgradient_at_zero_is_torch_autograds():
    # A zero row of X puts a whole row of h = X W exactly on the kink; there both take the slope α.
    d = analytic.builtin("leaky_relu_regression")
    rng = np.random.default_rng(0)
    X, W, Y = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal((3, 2))
    X[1] = 0.0
    ours = d.gradients(X=X, W=W, Y=Y)
    torchs = autograd_gradients(d, {"X": X, "W": W, "Y": Y})
    for param in d.params:
        np.testing.assert_allclose(ours[param], torchs[param], rtol=1e-13, atol=1e-13, err_msg=param)
    dX_row = 2.0 * (0.0 - Y[1]) * 0.01 @ W.T  # ∂f/∂X[1] = (2 r ⊙ α) Wᵀ with r = leaky(0) − Y = −Y
    np.testing.assert_allclose(ours["X"][1], dX_row, rtol=1e-13)


# --- layers see a random upstream gradient ------------------------------------------------------

SIZES = {"linear_layer": {"N": 3, "D_in": 4, "D_out": 2}, "softmax": {"N": 3, "C": 4}, "layer_norm": {"N": 3, "D": 4}}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_is_checked_with_a_random_grad_output(name):
    d = analytic.builtin(name)
    point = draw_point(d, SIZES[name], seed=3)
    G = point.grad_output
    assert G is not None and G.shape == d.output_shape(SIZES[name])
    assert np.unique(G).size == G.size  # distinct entries: not all ones, not one repeated value
    report = check(d, at={**point.params, "grad_output": G})
    assert report.passed, report.message


def test_all_ones_grad_output_would_hide_a_wrong_softmax_backward():
    # With G = 1 every row of S ⊙ (G − rowsum(G ⊙ S)) is S ⊙ (1 − 1) = 0, so "return zeros" looks
    # right; only a random G exposes it, which is why the harness draws one.
    d = analytic.builtin("softmax")
    wrong = altered(d, "softmax_zero", lambda g, p: {"Z": np.zeros_like(p["Z"])})
    point = draw_point(d, SIZES["softmax"], seed=3)
    assert check(wrong, at={**point.params, "grad_output": np.ones_like(point.grad_output)}).passed
    assert check(wrong, at={**point.params, "grad_output": point.grad_output}).status == Status.FAIL
    assert check(wrong, examples=EXAMPLES, seed=SEED, database=False).status == Status.FAIL


# --- correct gradients whose entries cancel: a former false positive of the checker ----------------
# The checker allows analytic and autograd to differ by C_NOISE·σ_t + C_SIZE·u·√L·max|∂f/∂P|: it
# scales with the size of the *result*. When a gradient entry is a sum whose terms cancel, two exact
# computations that add in different orders differ by ~u·(size of the terms), which can be far more.
# ∂f/∂b of a linear layer and ∂f/∂β of layer_norm are column sums of G (NumPy and torch add them in
# different orders once the column is contiguous, D_out = 1 or D = 1); layer_norm's ∂f/∂X at D = 2
# is O(ε) left over from O(1) terms. The checker measures the rounding noise of the autograd
# gradient per entry with every input jittered, grad_output included, so these points must pass;
# where the exact value is at hand (the sums, via math.fsum), the analytic side is the more accurate.

CANCELLING_SUMS = [
    ("linear_layer", {"N": 7, "D_in": 7, "D_out": 1}, 88, "b"),
    ("layer_norm", {"N": 7, "D": 1}, 1, "beta"),
]
FALSE_POSITIVES = [*((name, sizes, seed) for name, sizes, seed, _ in CANCELLING_SUMS), ("layer_norm", {"N": 1, "D": 2}, 48366)]


def _column_sums_exactly(G: np.ndarray) -> np.ndarray:
    return np.array([math.fsum(G[:, j]) for j in range(G.shape[1])])


@pytest.mark.parametrize(("name", "sizes", "seed", "param"), CANCELLING_SUMS, ids=[c[0] for c in CANCELLING_SUMS])
def test_analytic_batch_sum_is_at_least_as_accurate_as_autograd(name, sizes, seed, param):
    d = analytic.builtin(name)
    point = draw_point(d, sizes, seed)
    exact = _column_sums_exactly(point.grad_output)
    ours = d.gradients(**point.params, grad_output=point.grad_output)[param]
    torchs = autograd_gradients(d, point.params, point.grad_output)[param]
    assert np.all(np.abs(ours - exact) <= np.abs(torchs - exact))
    assert np.all(np.abs(ours - exact) <= np.spacing(np.abs(point.grad_output).sum(axis=0)))


@pytest.mark.parametrize(
    ("name", "sizes", "seed"), FALSE_POSITIVES, ids=["-".join([n, *(f"{k}{v}" for k, v in s.items())]) for n, s, _ in FALSE_POSITIVES]
)
def test_checker_accepts_a_correct_gradient_that_cancels(name, sizes, seed):
    report = check(analytic.builtin(name), replay=(sizes, seed))
    assert report.status != Status.ERROR, report.message  # an error would be a broken reproduction, not the false positive
    assert report.passed, report.message
