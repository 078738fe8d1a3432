"""A correct gradient through a saturated tanh (tanh(z) within 1e-8 of ±1) is judged on the rounding it carries.

There 1 − t² is a small difference of numbers near 1: it moves only when z moves by many ulps of z, so a jitter of a few
ulps (ε_f) or of 2⁻²⁸ (σ) sees no rounding at all, while NumPy's and torch's tanh differ by an ulp of 1. ε_f is also
read along a line at the steps' scale, and σ, where the jitter's does not suffice, along lines through the point
(docs/tolerances.md §2, §4). The points below were counterexamples of a search with X drawn in ±30."""

import numpy as np
import pytest

from verigrad import Derivation, draw_point
from verigrad.checks import check
from verigrad.checks.report import FAIL, PASS, Blame


def tanh_sum(factor_x=1.0, factor_w=1.0):
    def gradients(X, w):
        t = np.tanh(X @ (2 * w))
        return {"X": factor_x * 2 * np.outer(1 - t**2, w), "w": factor_w * 2 * X.T @ (1 - t**2)}

    return Derivation(
        name="tanh_sum",
        shapes={"X": ("N", "D"), "w": ("D",)},
        forward=lambda xp, X, w: xp.sum(xp.tanh(X @ (2 * w))),
        gradients=gradients,
        ranges={"X": (-30, 30)},
    )


#: (seed of the point at N=2, D=1; 1 − t² there).
POINTS = [(0, (2.9e-9, 1.8e-15)), (46, (1.4e-11, 4.5e-12))]


def at(seed):
    return draw_point(tanh_sum(), {"N": 2, "D": 1}, seed)


@pytest.mark.parametrize(("seed", "saturation"), POINTS)
def test_the_points_are_saturated(seed, saturation):
    p = at(seed)
    np.testing.assert_allclose(1 - np.tanh(p.params["X"] @ (2 * p.params["w"])) ** 2, saturation, rtol=0.05)


def test_a_cancelling_saturated_forward_is_not_a_wrong_graph():
    # f = tanh(10.5) + tanh(−17.7) ≈ −1.4e-9 while each term rounds by 1.1e-16: the jitter's ε_f (its floor 4u|f|,
    # 6e-25) put D(h), 1.9e-13 off, beyond its bound, and blamed torch's graph.
    rep = check(tanh_sum(), at=at(0))
    assert rep.status == PASS, rep.message
    assert not any(g.blame == Blame.GRAPH for g in rep.gradients)


def test_a_gradient_rounding_at_5e_5_of_itself_passes():
    # 1 − t² = 4.5e-12: NumPy's and torch's ∂f/∂X differ by 1.2e-16, 5e-5 of the entry, where the jitter's σ read 4e-19.
    p = at(46)
    d = tanh_sum()
    auto = 2 * np.outer(1 - np.tanh(p.params["X"] @ (2 * p.params["w"])) ** 2, p.params["w"])
    rep = check(d, at=p)
    assert rep.status == PASS, rep.message
    x = next(g for g in rep.gradients if g.param == "X")
    assert x.max_abs_err > 1e-5 * np.max(np.abs(auto))  # the libraries do disagree: rounding, not a formula error


@pytest.mark.parametrize(("seed", "_"), POINTS)
@pytest.mark.parametrize(("factor_x", "factor_w", "wrong"), [(1.0, 2.0, "w"), (1.001, 1.0, "X"), (-1.0, 1.0, "X")])
def test_a_wrong_gradient_still_fails_there(seed, _, factor_x, factor_w, wrong):
    rep = check(tanh_sum(factor_x, factor_w), at=at(seed))
    assert rep.status == FAIL, rep.message
    assert [g.param for g in rep.failures] == [wrong]
    assert rep.failures[0].blame == Blame.ANALYTIC


def no_vmap(d):
    """``d`` with a forward that does not run under vmap (Python control flow on a value): checked alone."""

    def forward(xp, X, w):
        return d.forward(xp, X, w) if float(xp.sum(X)) < 1e300 else None

    return Derivation(name=f"{d.name}_alone", shapes=d.shapes, forward=forward, gradients=d.gradients, ranges=d.ranges)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")  # the forward's float() under autograd
@pytest.mark.parametrize(("seed", "_"), POINTS)
def test_a_point_checked_alone_reads_the_lines_too(seed, _):
    assert check(no_vmap(tanh_sum()), at=at(seed)).status == PASS
    wrong = check(no_vmap(tanh_sum(factor_x=1.001)), at=at(seed))
    assert (wrong.status, [g.param for g in wrong.failures]) == (FAIL, ["X"])


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")
def test_a_forward_failing_along_the_lines_keeps_the_jitters_verdict(monkeypatch):
    # Where the forward cannot be evaluated along the lines, the verdict with the jitter's rounding stands: a wrong
    # gradient still fails (not an error), and the saturated point fails as it did before the lines.
    from verigrad.checks.verdict import point
    from verigrad.reference import ForwardError

    def fails(*args, **kwargs):
        raise ForwardError("forward raised under torch: ValueError: off the lines' domain")

    monkeypatch.setattr(point, "line_autograd", fails)
    assert check(no_vmap(tanh_sum(factor_w=2.0)), at=at(0)).status == FAIL
    rep = check(no_vmap(tanh_sum()), at=at(46))
    assert rep.status == FAIL and "off the lines' domain" not in rep.message
