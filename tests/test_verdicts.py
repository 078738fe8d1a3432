"""Trustworthy verdicts: silent on correct gradients in every regime, loud and precise on wrong ones.

Each test checks one regime of docs/tolerances.md at a moderate size; benchmarks/verdicts.py measures the
same regimes at full size against torch.autograd.gradcheck.
"""

from __future__ import annotations

import numpy as np
import pytest

from verigrad.analytic import Derivation, builtin
from verigrad.analytic import two_layer_relu as relu
from verigrad.checks import check, draw_point
from verigrad.reference import autograd_gradients, finite_differences, rounding_noise, steps_for

SIZES = {"N": 8, "D_in": 30, "H": 12, "D_out": 4}
RELU = builtin("two_layer_relu")
SIGMOID = builtin("two_layer_sigmoid")
#: Same forward and gradients as two_layer_relu, with no declared switch: kinks are found by finite differences.
RELU_UNDECLARED = Derivation(name="two_layer_relu_undeclared", shapes=RELU.shapes, forward=relu.forward, gradients=relu.gradients)


def draw(derivation: Derivation, seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: scale * rng.standard_normal(derivation.shape_of(n, SIZES)) for n in derivation.params}


def with_gradients(derivation: Derivation, gradients, name: str | None = None) -> Derivation:
    return Derivation(name=name or derivation.name, shapes=derivation.shapes, forward=derivation.forward, gradients=gradients, kinks=derivation.kinks)


def plant(gradients, param: str, index: tuple[int, ...], relative: float, dtype=np.float64):
    """``gradients`` returned in ``dtype`` with entry ``index`` of ∂f/∂param off by relative × max|∂f/∂param|."""

    def wrong(**p):
        out = {k: np.asarray(v).astype(dtype) for k, v in gradients(**p).items()}
        g = out[param].copy()
        g[index] += relative * float(np.max(np.abs(g)))
        out[param] = g
        return out

    return wrong


def grad(report, param: str):
    return next(g for g in report.gradients if g.param == param)


# --- correct derivations pass ---------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e4], ids=["scaled_1e-6", "unscaled", "scaled_1e4"])
def test_correct_gradient_passes_at_any_scale(scale):
    report = check(RELU, at=draw(RELU, 1, scale))
    assert report.status == "pass", report.message
    for g in report.gradients:
        assert g.blame is None, (g.param, g.warnings)
        assert g.threshold["analytic_vs_autograd"] > 0


def near_kink(seed: int, distance: float) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """A draw whose pre-activation h[n, j] = (X W1)[n, j] is moved to ``distance`` from 0."""
    params = draw(RELU, seed)
    X, W1 = params["X"], params["W1"]
    n, j = 2, 5
    W1[:, j] += (distance - X[n] @ W1[:, j]) * X[n] / (X[n] @ X[n])
    return params, (n, j)


@pytest.mark.parametrize("derivation", [RELU, RELU_UNDECLARED], ids=["kinks_declared", "kinks_undeclared"])
@pytest.mark.parametrize("distance", [0.0, 1e-9, -1e-9], ids=["at_0", "above_by_1e-9", "below_by_1e-9"])
def test_near_kink_entries_reported_nondifferentiable(derivation, distance):
    params, (n, j) = near_kink(3, distance)
    report = check(derivation, at=params)
    assert report.status == "pass", report.message
    X, W1 = params["X"], params["W1"]
    dist = abs(float(X[n] @ W1[:, j]))
    # Entries whose quarter step crosses the kink by a clear margin must be listed.
    must_x = {(n, i) for i in range(X.shape[1]) if dist < steps_for(X)[n, i] * abs(W1[i, j]) / 10}
    must_w = {(i, j) for i in range(W1.shape[0]) if dist < steps_for(W1)[i, j] * abs(X[n, i]) / 10}
    assert must_x and must_w
    assert must_x <= set(grad(report, "X").nondifferentiable)
    assert must_w <= set(grad(report, "W1").nondifferentiable)
    # Nothing else is touched by this kink: W2 and Y stay differentiable.
    assert not grad(report, "Y").nondifferentiable


def test_other_subgradient_at_exact_zero_is_reported_not_failed():
    """mask h >= 0 instead of h > 0: the same function, another subgradient at an exact 0; flagged as a convention."""

    def ge_gradients(X, W1, W2, Y):
        h = X @ W1
        a = np.maximum(h, 0.0)
        dy = 2.0 * (a @ W2 - Y)
        dh = (dy @ W2.T) * (h >= 0)
        return {"W1": X.T @ dh, "W2": a.T @ dy, "X": dh @ W1.T, "Y": -dy}

    params, _ = near_kink(3, 0.0)
    params["X"][2, 1:] = 0.0  # h[2, 5] = X[2, 0] W1[0, 5] exactly 0 when W1[0, 5] = 0
    params["W1"][0, 5] = 0.0
    assert (params["X"] @ params["W1"])[2, 5] == 0.0
    report = check(with_gradients(RELU, ge_gradients, "relu_mask_ge"), at=params)
    assert report.status == "pass", report.message
    assert any("convention" in w for g in report.gradients for w in g.warnings)


def test_float32_gradient_passes_with_a_warning():
    f32 = with_gradients(RELU, lambda **p: {k: v.astype(np.float32) for k, v in relu.gradients(**p).items()}, "relu_float32")
    report = check(f32, at=draw(RELU, 4))
    assert report.status == "pass", report.message
    for g in report.gradients:
        assert g.dtype == "float32"
        assert any("float32" in w for w in g.warnings)


def test_saturated_sigmoid_is_decided_by_finite_differences():
    params = draw(SIGMOID, 5)
    params["b1"] = np.full(SIZES["H"], -800.0)  # autograd: 0 · inf = NaN through 1/(1 + exp(−h))
    report = check(SIGMOID, at=params)
    assert report.status == "pass", report.message
    for name in ("X", "W1", "b1"):
        g = grad(report, name)
        assert len(g.decided_by_fd) == g.entries
        assert any("decided by finite differences" in w for w in g.warnings)


# --- wrong derivations fail, at the right entry ----------------------------------------------------
@pytest.mark.parametrize("param", ["X", "W1", "W2", "Y"])
def test_planted_float64_error_is_caught_and_located(param):
    params = draw(RELU, 6)
    shape = params[param].shape
    index = tuple(int(i) for i in np.unravel_index(7 % int(np.prod(shape)), shape))
    report = check(with_gradients(RELU, plant(relu.gradients, param, index, 1e-6), "relu_planted"), at=params)
    assert report.status == "fail"
    g = grad(report, param)
    assert (g.status, g.blame, g.worst_index, g.mismatches) == ("fail", "analytic", index, 1)
    assert all(o.status == "pass" for o in report.gradients if o.param != param)


@pytest.mark.parametrize("seed", [0, 2, 3], ids=lambda s: f"seed_{s}")
def test_planted_error_is_caught_next_to_a_kink_at_rounding_level(seed):
    """A pre-activation of ~1e-16 flips under the ulp jitter that measures σ_t: that jump must not widen τ_ex."""
    params, (n, j) = near_kink(seed, 0.0)
    assert abs(float((params["X"] @ params["W1"])[n, j])) < 1e-14
    index = (3, 2)
    report = check(with_gradients(RELU, plant(relu.gradients, "W1", index, 1e-6), "relu_planted_at_kink"), at=params)
    g = grad(report, "W1")
    assert (report.status, g.blame, g.worst_index) == ("fail", "analytic", index)
    assert g.threshold["analytic_vs_autograd"] < 1e-9 * float(np.max(np.abs(g.reference)))


def test_planted_float32_error_is_caught_and_located():
    params = draw(RELU, 7)
    index = (3, 2)
    wrong = plant(relu.gradients, "W1", index, 1e-3, np.float32)
    report = check(with_gradients(RELU, wrong, "relu_planted_float32"), at=params)
    g = grad(report, "W1")
    assert (report.status, g.blame, g.worst_index) == ("fail", "analytic", index)


# --- the forward or autograd is the suspect ---------------------------------------------------------
def normalized(xp, W, X):
    """f = ‖X W‖²_F / c with c = ‖W‖²_F taken through float(): a constant to torch, a function of W to f."""
    c = float(xp.sum(W * W))
    return xp.sum((X @ W) ** 2) / c


def full_gradients(W, X):
    c = float(np.sum(W * W))
    h = X @ W
    return {"X": 2 * h @ W.T / c, "W": 2 * X.T @ h / c - 2 * np.sum(h * h) * W / c**2}


def stop_gradient_gradients(W, X):
    c = float(np.sum(W * W))
    h = X @ W
    return {"X": 2 * h @ W.T / c, "W": 2 * X.T @ h / c}


#: W first: float() cannot run under vmap when W is batched, so finite differences fall back to NumPy for all.
NORMALIZED_SHAPES = {"W": ("D", "M"), "X": ("N", "D")}


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
@pytest.mark.parametrize(
    ("gradients", "status", "blame"),
    [(full_gradients, "pass", "autograd"), (stop_gradient_gradients, "fail", "graph")],
    ids=["full_derivative_passes_blaming_autograd", "stop_gradient_fails_blaming_the_graph"],
)
def test_detached_constant_blames_the_right_witness(gradients, status, blame):
    """Finite differences see the function written: a gradient that agrees with autograd only fails."""
    d = Derivation(name=f"normalized_{blame}", shapes=NORMALIZED_SHAPES, forward=normalized, gradients=gradients)
    rng = np.random.default_rng(8)
    report = check(d, at={"X": rng.standard_normal((5, 4)), "W": rng.standard_normal((4, 3))})
    assert report.status == status, report.message
    assert (grad(report, "W").status, grad(report, "W").blame) == (status, blame)
    assert grad(report, "W").warnings
    assert grad(report, "X").blame is None


def test_nondeterministic_forward_is_an_error_not_a_gradient_failure():
    def dropout_forward(xp, X, W1, W2, Y):
        h = X @ W1
        keep = np.random.default_rng().random(tuple(h.shape)) > 0.5  # unseeded: another mask every call
        a = h * (h > 0) * xp.asarray(keep, dtype=xp.float64) * 2.0
        return xp.sum((Y - a @ W2) ** 2)

    d = Derivation(name="dropout_unseeded", shapes=RELU.shapes, forward=dropout_forward, gradients=relu.gradients)
    report = check(d, at=draw(RELU, 9))
    assert report.status == "error"
    assert "not deterministic" in report.message


# --- the finite-difference witness alone --------------------------------------------------------------
def _one_dim(forward) -> Derivation:
    return Derivation(name="one_dim", shapes={"x": (3,)}, forward=forward, gradients=lambda x: {"x": x})


@pytest.mark.parametrize("where", [0.0, 1e-9, -3e-10], ids=["at_0", "right_1e-9", "left_3e-10"])
def test_fd_classifies_an_undeclared_kink(where):
    d = _one_dim(lambda xp, x: xp.sum(xp.abs(x - where) * 3.0 + x * x))
    fd = finite_differences(d, {"x": np.array([0.0, 0.7, -1.3])})
    assert fd.gradients["x"].nondifferentiable.tolist() == [True, False, False]


def test_fd_smooth_curvature_is_not_a_kink():
    d = _one_dim(lambda xp, x: xp.sum(xp.exp(4.0 * x) + 1e6 * x * x))
    fd = finite_differences(d, {"x": np.array([0.0, 0.7, -1.3])})
    est = fd.gradients["x"]
    assert not est.nondifferentiable.any()
    x = np.array([0.0, 0.7, -1.3])
    exact = 4.0 * np.exp(4.0 * x) + 2e6 * x
    assert np.all(np.abs(est.value - exact) <= 4 * est.error + 1e-12 * np.abs(exact))


# --- a saturated tanh: autograd's 1 − t² is off by ~u/(1 − t²) relative --------------------------


def _tanh_sech2_gradients(X, W, Y):
    h = X @ W
    r = np.tanh(h) - Y
    dh = 2.0 * r / np.cosh(h) ** 2  # sech²(h): accurate to about an ulp even where tanh(h) ≈ ±1
    return {"W": X.T @ dh, "X": dh @ W.T, "Y": -2.0 * r}


@pytest.mark.parametrize(("sizes", "seed"), [({"N": 1, "D": 7, "M": 1}, 306), ({"N": 1, "D": 1, "M": 1}, 3)], ids=["D7", "D1"])
def test_an_accurate_gradient_through_a_saturated_tanh_passes(sizes, seed):
    """torch's tanh backward uses the rounded output t, so near saturation autograd itself is the
    less accurate witness; the measured rounding noise (one-sided jitter less the Hessian-vector
    product) must cover it. A symmetric second difference measured ~0 here and failed this point."""
    base = builtin("tanh_regression")
    d = Derivation(name="tanh_sech2", shapes=base.shapes, forward=base.forward, gradients=_tanh_sech2_gradients)
    report = check(d, replay=(sizes, seed))
    assert report.passed, report.message


def test_the_measured_autograd_noise_is_not_zero_where_autograd_rounds():
    d = builtin("tanh_regression")
    point = draw_point(d, {"N": 1, "D": 7, "M": 1}, 306)
    sigma = rounding_noise(d, point.params, None, np.random.default_rng(0), jitters=2, relative=2.0**-32)
    exact_gap = np.abs(_tanh_sech2_gradients(**point.params)["X"] - autograd_gradients(d, point.params)["X"])
    assert 16 * sigma["X"].max() >= exact_gap.max() > 0


# --- the hand-derived gradient's own rounding ---------------------------------------------------------
SATURATED = ({"N": 8, "D_in": 1, "H": 1, "D_out": 1}, 3)  # a point the search found: σ(h) near 1 for some rows


@pytest.mark.parametrize("name", ["two_layer_sigmoid", "two_layer_sigmoid_mse"])
def test_a_correct_formula_that_rounds_worse_than_autograd_passes(name):
    """s ⊙ (1 − s) cancels where σ(h) ≈ 1 and autograd's chain does not: ∂f/∂W1 differed by 35 ulps of
    max|t| at this point, over a τ_ex that counted autograd's rounding only. σ_a, measured, covers it."""
    report = check(builtin(name), replay=SATURATED)
    assert report.passed, report.message


def test_the_analytic_rounding_does_not_hide_a_small_error_there():
    d = builtin("two_layer_sigmoid")
    wrong = with_gradients(d, plant(d.gradients, "W1", (0, 0), 1e-6), "sigmoid_planted")
    report = check(wrong, replay=SATURATED)
    g = grad(report, "W1")
    assert (report.status, g.blame, g.worst_index) == ("fail", "analytic", (0, 0))
    # σ_a is capped at √u·max|t| per entry (checks/verdict/thresholds.py): τ_ex stays far below the error.
    assert g.threshold["analytic_vs_autograd"] < 1e-2 * abs(g.analytic_value - g.reference_value)


def test_a_saturated_tanh_whose_libraries_differ_by_ulps_passes():
    """tanh(h ≈ 11): NumPy's and torch's tanh differ by a few ulps, which 1 − t² ≈ 1e-9 amplifies; the
    jitter that measures σ_t (2⁻²⁸) must move t there for τ_ex to cover it (a 2⁻³² jitter did not)."""
    report = check(builtin("tanh_regression"), replay=({"N": 1, "D": 7, "M": 1}, 324))
    assert report.passed, report.message
