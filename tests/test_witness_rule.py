"""Witnesses that disagree are never a pass: finite differences see the function the user wrote.

A hand gradient that agrees with autograd only — where torch's graph is not the forward's function (a custom
``torch.autograd.Function`` with a wrong backward, a value taken out of the graph) — fails, judged against the
finite differences; a kink (declared or not) is told apart by its one-sided slopes and stays a pass.
"""

import warnings

import numpy as np
import pytest
import torch

from verigrad import Derivation, check


class Square(torch.autograd.Function):
    """x², with a backward wrong by a factor 2 (4x for 2x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 4 * x


class GoodSquare(Square):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x


def _forward_with(fn):
    def forward(xp, X, W):
        h = X @ W
        return fn.apply(h).sum() if isinstance(h, torch.Tensor) else xp.sum(h * h)

    return forward


def _gradients_with(factor):
    def gradients(X, W):
        dh = factor * (X @ W)
        return {"X": dh @ W.T, "W": X.T @ dh}

    return gradients


SHAPES = {"X": ("N", "D"), "W": ("D", "M")}


def shared_mistake():
    """The custom backward's mistake, repeated by the hand gradient: analytic and autograd agree, the function does not."""
    return Derivation(name="square_shared_mistake", shapes=SHAPES, forward=_forward_with(Square), gradients=_gradients_with(4))


def _point(seed=0):
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((3, 4)), "W": rng.standard_normal((4, 2))}


@pytest.mark.parametrize("mode", ["exhaustive", "projection"])
def test_a_gradient_that_repeats_a_custom_backwards_mistake_fails(mode):
    report = check(shared_mistake(), at=_point(), mode=mode)
    assert report.status == "fail", report.message
    for g in report.gradients:
        assert (g.status, g.blame) == ("fail", "graph"), g.param
        # every entry differenced is wrong (projection differences those its directions localized), against the function's values
        assert g.mismatches == g.entries if mode == "exhaustive" else g.mismatches >= 1
        assert g.analytic_value == pytest.approx(2 * g.reference_value, rel=1e-6)
        assert any("torch.autograd.Function Square" in w for w in g.warnings), g.warnings


def test_the_search_fails_it_and_names_the_factor():
    report = check(shared_mistake(), examples=5, seed=1, database=False)
    assert report.status == "fail"
    for g in report.gradients:
        assert (g.blame, g.diagnosis.kind, g.diagnosis.details.get("scale_factor")) == ("graph", "scale", 2.0), g.diagnosis.sentence
        assert g.slip is None and "torch's graph is not the forward's function" in g.slip_reason


def test_the_functions_gradient_under_a_wrong_backward_passes_blaming_autograd():
    """The function's gradient under the same wrong backward: autograd is the odd one out, a warning."""
    report = check(Derivation(name="square_right", shapes=SHAPES, forward=_forward_with(Square), gradients=_gradients_with(2)), at=_point())
    assert report.status == "pass", report.message
    assert {g.blame for g in report.gradients} == {"autograd"}


def test_a_right_custom_backward_is_a_clean_pass():
    report = check(Derivation(name="square_good", shapes=SHAPES, forward=_forward_with(GoodSquare), gradients=_gradients_with(2)), at=_point())
    assert report.status == "pass"
    assert all(g.blame is None and not g.warnings for g in report.gradients)


def _norm_forward(xp, x, w):
    n = float(xp.sqrt(xp.sum(x * x)))  # leaves torch's graph: a constant to autograd
    return xp.sum(w * x) / n


def _norm_as_constant(x, w):
    n = float(np.sqrt(np.sum(x * x)))
    return {"x": w / n, "w": x / n}


def test_a_value_taken_out_of_the_graph_fails_a_gradient_that_treats_it_as_constant():
    d = Derivation(name="detached_norm", shapes={"x": ("D",), "w": ("D",)}, forward=_norm_forward, gradients=_norm_as_constant)
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's warning on float() of a tensor that requires grad
        report = check(d, at={"x": rng.standard_normal(5), "w": rng.standard_normal(5)})
    gx, gw = report.gradients
    assert (report.status, gx.status, gx.blame) == ("fail", "fail", "graph")
    assert any("a value taken out of the graph" in w for w in gx.warnings), gx.warnings
    assert (gw.status, gw.blame) == ("pass", None)  # ∂f/∂w = x/‖x‖ is the function's gradient


def _relu_loss(xp, X, W):
    h = X @ W
    return xp.sum(h * (h > 0))


def _relu_grads(X, W):
    dh = 1.0 * (X @ W > 0)
    return {"X": dh @ W.T, "W": X.T @ dh}


def test_an_undeclared_kink_inside_the_step_is_not_a_graph_failure():
    """No kinks= declared, an entry of h = XW within 1e-12 of 0: the one-sided slopes tell the kink."""
    d = Derivation(name="relu_undeclared", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=_relu_loss, gradients=_relu_grads)
    p = _point(5)
    X, W = p["X"], p["W"]
    W[0, 0] -= (X[0] @ W[:, 0] - 1e-12) / X[0, 0]  # h[0, 0] = 1e-12 up to rounding
    report = check(d, at={"X": X, "W": W})
    assert report.status == "pass", report.message
    assert all(g.blame != "graph" for g in report.gradients)
    assert any(g.nondifferentiable for g in report.gradients)



def test_a_near_tie_of_a_max_is_not_a_graph_failure():
    d = Derivation(name="max_tie", shapes={"x": ("D",)}, forward=lambda xp, x: xp.max(x) ** 2,
                   gradients=lambda x: {"x": np.where(np.arange(x.size) == np.argmax(x), 2 * np.max(x), 0.0)})
    x = np.array([0.3, 1.0, 1.0 + 1e-13, -0.2])
    report = check(d, at={"x": x})
    assert report.status == "pass", report.message
    assert report.gradients[0].blame != "graph" and report.gradients[0].nondifferentiable


def _tanh_sum(xp, X, w):
    return xp.sum(xp.tanh(X @ (2 * w)))


def _tanh_sum_gradients(X, w):
    s = 1 - np.tanh(X @ (2 * w)) ** 2
    return {"X": np.outer(s, 2 * w), "w": 2 * X.T @ s}


def test_rounding_frozen_in_a_saturated_tanh_is_not_a_wrong_graph():
    """At N=2, D=1 (search seed 2) tanh(h) ≈ ±1 rounds by 1e-16 while ε_f, measured at ulps-sized jitters, reads
    5e-19: one entry's difference was off by 1e-11 against its own K_FD·e of 3.5e-12, and the correct forward
    failed with blame graph. The other entries' measured gaps, 1e-10, show the differences' real noise."""
    d = Derivation(name="tanh_sum", shapes={"X": ("N", "D"), "w": ("D",)}, forward=_tanh_sum, gradients=_tanh_sum_gradients)
    report = check(d, examples=10, seed=2, database=False)
    assert report.status == "pass", report.message
