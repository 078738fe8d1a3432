"""A passing row shows the most demanding point the search judged, and names it so it can be replayed.

The search used to keep the figures of the last point it checked: often a shrunk size where the
reference is exactly 0 and τ_ex falls to float64's normal floor, so a correct gradient read
``0.00e+00 0.00e+00 2.23e-308``.
"""

import numpy as np
import pytest

from tests.helpers import altered
from verigrad import analytic
from verigrad.checks import check
from verigrad.checks.report import FAIL, PASS, GradientReport, Point, Report, RunReport
from verigrad.checks.report.html import render_html
from verigrad.checks.report.markdown import render_markdown
from verigrad.checks.report.terminal import render
from verigrad.checks.search.coverage import Coverage
from verigrad.checks.verdict import judged

#: float64's smallest normal number: a threshold there means τ_ex saw a reference of 0 everywhere.
NORMAL_FLOOR = float(np.finfo(np.float64).tiny)
#: Run seeds under which the last point checked left a zero reference (softmax's Z; conv2d's x and w) before.
SEEDS = {"softmax": 3, "conv2d": 5}


@pytest.fixture(scope="module")
def reports():
    return {name: check(analytic.builtin(name), seed=seed, database=False) for name, seed in SEEDS.items()}


@pytest.mark.parametrize("name", ["softmax", "conv2d"])
def test_a_passing_row_shows_a_point_that_judged_the_gradient(reports, name):
    report = reports[name]
    assert report.passed
    for g in report.gradients:
        assert judged(g), g.param
        assert np.any(np.asarray(g.reference) != 0), g.param
        assert g.threshold["analytic_vs_autograd"] > NORMAL_FLOOR, g.param


@pytest.mark.parametrize("name", ["softmax", "conv2d"])
def test_a_passing_row_names_its_point_and_the_replay_gives_its_figures(reports, name):
    report = reports[name]
    for g in report.gradients:
        at = g.figures_at
        assert at is not None and at["seed"] is not None and at["shapes"], g.param
        assert f"seed={at['seed']}" in at["replay"]
        sizes = {**at["shapes"], **at.get("hyper", {}), **{k: np.asarray(v) for k, v in at.get("data", {}).items()}}
        again = check(analytic.builtin(name), replay=(sizes, at["seed"]))
        g1 = next(x for x in again.gradients if x.param == g.param)
        # τ_ex is not compared: σ is measured on jittered copies drawn per stack, and a replay judges a stack of one.
        assert (g1.max_abs_err, g1.worst_index, g1.analytic_value, g1.reference_value) == (
            g.max_abs_err,
            g.worst_index,
            g.analytic_value,
            g.reference_value,
        )
        assert report.to_dict()["gradients"][report.gradients.index(g)]["figures_at"] == at


def _seen(err, tau, reference, status=PASS):
    g = GradientReport(param="W", status=status, max_abs_err=err, entries=np.size(reference))
    g.threshold, g.reference = {"analytic_vs_autograd": tau}, np.asarray(reference, dtype=np.float64)
    return Report(name="d", status=status, gradients=[g]), g


def test_the_search_keeps_the_largest_error_relative_to_its_threshold_among_judged_points():
    coverage = Coverage()
    points = [Point(sizes={"N": n}, params={}, seed=n) for n in range(6)]
    _, small = _seen(1e-16, 1e-14, [1.0, 2.0])
    _, zero_ref = _seen(1e-300, 1e-308, [0.0, 0.0])  # err/τ is 1e8, but nothing was judged there
    _, worst = _seen(4e-15, 1e-14, [1.0, 2.0])
    _, tie = _seen(4e-15, 1e-14, [1.0])  # the same ratio on fewer entries: the first stays
    _, later = _seen(3e-15, 1e-14, [1.0, 2.0, 3.0])
    failing, _ = _seen(1.0, 1e-14, [1.0, 2.0], status=FAIL)
    for point, g in zip(points, [small, zero_ref, worst, tie, later], strict=False):
        coverage.see(Report(name="d", status=PASS, gradients=[g]), point)
    coverage.see(failing, points[5])
    assert coverage.most_demanding("W") == (worst, points[2])
    assert coverage.most_demanding("b") is None


def test_a_tie_at_zero_error_keeps_the_point_with_most_entries():
    coverage = Coverage()
    points = [Point(sizes={"N": n}, params={}, seed=n) for n in range(3)]
    gs = [_seen(0.0, 1e-14, [1.0] * n)[1] for n in (1, 3, 2)]
    for point, g in zip(points, gs, strict=True):
        coverage.see(Report(name="d", status=PASS, gradients=[g]), point)
    assert coverage.most_demanding("W") == (gs[1], points[1])


def test_every_view_names_the_point_of_a_passing_row(reports):
    run = RunReport([reports["softmax"]], seed=SEEDS["softmax"])
    g = reports["softmax"].gradients[0]
    seed_words = f"point seed {g.figures_at['seed']}"
    for view in (render, render_markdown, render_html):
        assert seed_words in view(run), view.__name__
    assert g.figures_at["replay"] in render_html(run)


def test_a_failing_gradient_keeps_its_counterexample_and_the_passing_ones_show_their_own_point():
    d = analytic.builtin("relu_regression")
    wrong = altered(d, "relu_sign", lambda g, p: {**g, "W": -g["W"]})
    report = check(wrong, examples=30, seed=1, database=False)
    assert report.status == "fail"
    (bad,) = report.failures
    assert set(report.shapes.values()) == {1} and bad.counterexample["shapes"] == report.shapes
    assert bad.figures_at is None
    for g in report.gradients:
        if g.status == "pass":
            assert g.figures_at is not None and judged(g)
            assert g.threshold["analytic_vs_autograd"] > NORMAL_FLOOR
