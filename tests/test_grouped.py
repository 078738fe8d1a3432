"""Points checked together (checks/verdict/stacked.py, reference.Stack) get the verdicts they get alone."""

import numpy as np
import pytest

import verigrad.checks.verdict.stacked as grouped
from tests.helpers import altered, plant
from tests.test_diagnose import DERIVATIONS as MUTANTS
from verigrad import analytic
from verigrad.checks import check
from verigrad.checks.report import NOISE_NOT_NEEDED
from verigrad.checks.search import VALUES_PER_SIZE, draw_point
from verigrad.checks.verdict import evaluate, evaluate_group
from verigrad.reference import Stack, autograd_gradients, finite_differences, steps_for

#: Built-ins drawn here by their sizes alone; those with hyperparameters, data or a seed are drawn per example
#: configuration and checked through check() in tests/test_builtins_reach.py.
BUILTINS = [d for d in analytic.builtins() if not d.has_inputs]
#: Points per group in these tests: enough for a stack, few enough to check each alone as well.
GROUP = 4


def points_of(d, seed=3, count=GROUP):
    rng = np.random.default_rng(seed)
    sizes = {s: int(rng.integers(d.dim_range(s)[0], d.dim_range(s)[1] + 1)) for s in d.symbols}
    return [draw_point(d, sizes, seed * 100 + j) for j in range(count)]


def stack_of(d, pts, **kw):
    return Stack(d, [p.params for p in pts], [p.grad_output for p in pts] if d.is_layer else None, **kw)


@pytest.mark.parametrize("d", BUILTINS, ids=lambda d: d.name)
def test_stacked_references_equal_the_single_ones(d):
    pts = points_of(d)
    stack = stack_of(d, pts)
    base = stack.autograd(np.random.default_rng(0), jitters=2, relative=2.0**-32)
    auto, sigma = stack.noise()
    for n in d.params:
        np.testing.assert_array_equal(base[n], auto[n])  # σ's call gives autograd the values the verdict had without it
    est, noise, f0 = stack.finite_differences(list(d.check), lambda n, e: np.zeros(e.value.shape, bool), np.random.default_rng(0))
    for i, p in enumerate(pts):
        single = autograd_gradients(d, p.params, p.grad_output)
        fd = finite_differences(d, p.params, p.grad_output, refine=lambda n, e: np.zeros(e.value.shape, bool))
        for n in d.params:
            scale = float(np.max(np.abs(single[n]), initial=0.0)) or 1.0
            # Batched kernels may round differently from single ones, by a few ulps of the largest entry.
            np.testing.assert_allclose(auto[n][i], single[n], rtol=0, atol=1e-13 * scale, err_msg=f"autograd ∂f/∂{n}")
            assert np.all(sigma[n][i] <= 1e-12 * scale), n  # rounding noise, not a different gradient
        for n in d.check:
            both = est[n].error[i] + fd.gradients[n].error
            assert np.all(np.abs(est[n].value[i] - fd.gradients[n].value) <= 2 * both), f"finite differences ∂f/∂{n}"
            np.testing.assert_array_equal(est[n].step[i], fd.gradients[n].step)
        assert abs(f0[i] - fd.f0) <= 4 * max(noise[i], fd.noise)
        assert noise[i] <= 16 * fd.noise and fd.noise <= 16 * noise[i]
    assert list(stack.evaluations) == [fd.evaluations] * len(pts)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the forward overflows at 1e308: inf − inf in the differences
def test_stacked_steps_are_each_parameters_own_bit_for_bit_and_refinement_reaches_every_estimate():
    """The differences take every parameter's steps in one pass over all columns: each must be steps_for of that
    parameter alone, where x² overflows and at sizes whose sums reduce pairwise; the refinement is written into
    each parameter's own estimate."""
    d = analytic.builtin("two_layer_relu")
    for scale in (1.0, 1e-300, 1e308):
        pts = points_of(d, seed=5)
        stack = stack_of(d, pts)
        w = stack.x["W1"]
        stack.x["W1"] = np.where(w < 0, -1.0, 1.0) * np.geomspace(1e-3, scale, w[0].size).reshape(w[0].shape)
        est, _, _ = stack.finite_differences(list(d.check), lambda n, e: np.ones(e.value.shape, bool), np.random.default_rng(0))
        for n in d.check:
            np.testing.assert_array_equal(est[n].step, steps_for(stack.x[n], stacked=True), err_msg=n)
            assert np.array_equal(est[n].refined, ~est[n].nondifferentiable), n
        if scale == 1.0:  # Richardson's estimates, where the forward is finite: a point's own, within both errors
            for i in range(len(pts)):
                params = {n: stack.x[n][i] for n in d.params}
                fd = finite_differences(d, params, None)
                for n in d.check:
                    both = est[n].error[i] + fd.gradients[n].error
                    assert np.all(np.abs(est[n].value[i] - fd.gradients[n].value) <= 2 * both), n
                    assert np.array_equal(est[n].refined[i], fd.gradients[n].refined), n


def test_chunked_rows_give_the_same_values():
    d = analytic.builtin("two_layer_relu")
    pts = points_of(d, seed=5)
    whole = stack_of(d, pts)
    tiny = stack_of(d, pts, memory_budget=1)  # one row per batched call
    none = lambda n, e: np.zeros(e.value.shape, bool)
    a, noise_a, f0_a = whole.finite_differences(list(d.check), none, np.random.default_rng(1))
    b, noise_b, f0_b = tiny.finite_differences(list(d.check), none, np.random.default_rng(1))
    assert tiny.chunk_rows() == 1
    for n in d.check:
        np.testing.assert_allclose(a[n].value, b[n].value, rtol=1e-9, atol=0)
    np.testing.assert_allclose(f0_a, f0_b, rtol=1e-15)
    np.testing.assert_allclose(noise_a, noise_b, rtol=1.0)  # the same order: rounding is drawn afresh


@pytest.mark.parametrize("name", sorted(MUTANTS) + [d.name for d in BUILTINS])
def test_grouped_verdicts_equal_single_verdicts(name):
    d = MUTANTS.get(name) or analytic.builtin(name)
    pts = points_of(d, seed=11)
    together = list(evaluate_group(d, pts))
    alone = [evaluate(d, p) for p in pts]
    for t, a in zip(together, alone, strict=True):
        assert (t.status, t.evaluations, t.points) == (a.status, a.evaluations, a.points)
        assert t.message == a.message
        assert [(g.param, g.status, g.entries) for g in t.gradients] == [(g.param, g.status, g.entries) for g in a.gradients]


def test_a_small_error_at_some_points_only_fails_those_points():
    d = analytic.builtin("two_layer_sigmoid")
    hurt = plant("W1", (0, 0), 1e-7)

    def change(g, p):  # wrong only where the first input is positive
        return hurt(g, p) if p["X"][0, 0] > 0 else g

    wrong = altered(d, "sigmoid_sometimes_wrong", change)
    pts = points_of(wrong, seed=2, count=12)
    expect = ["fail" if p.params["X"][0, 0] > 0 else "pass" for p in pts]
    assert "fail" in expect and "pass" in expect
    got = [r.status for r in evaluate_group(wrong, pts)]
    assert got == expect


def test_a_clean_pass_reports_what_a_single_check_reports():
    d = analytic.builtin("layer_norm")
    pts = points_of(d, seed=4)
    # Both pass with σ = 0 and report the tighter bound they passed; σ measured when asked, alike.
    for t, a in zip(evaluate_group(d, pts), (evaluate(d, p) for p in pts), strict=True):
        assert t.status == "pass" and t.mode == a.mode and t.shapes == a.shapes and t.point_seed == a.point_seed
        assert [g.sigma for g in t.gradients] == [g.sigma for g in a.gradients] == [NOISE_NOT_NEEDED] * len(a.gradients)
        t.gradients = [g.remeasure() for g in t.gradients]
        a.gradients = [g.remeasure() for g in a.gradients]
        for gt, ga in zip(t.gradients, a.gradients, strict=True):
            assert gt.param == ga.param and gt.dtype == ga.dtype
            assert gt.max_abs_err <= gt.threshold["analytic_vs_autograd"]
            for key, value in ga.threshold.items():  # the same bounds, up to the rounding noise drawn afresh
                assert value / 8 <= gt.threshold[key] <= 8 * value, key


SCALAR_PARAM = analytic.Derivation(
    name="scaled_square",
    shapes={"x": ("N",), "s": ()},
    forward=lambda xp, x, s: xp.sum((s * x) ** 2),
    gradients=lambda x, s: {"x": 2 * s * s * x, "s": np.asarray(2 * s * np.sum(x * x))},
)


@pytest.mark.parametrize("d", [*BUILTINS, SCALAR_PARAM], ids=lambda d: d.name)
def test_correct_points_are_passed_by_the_stack_itself(d):
    """No correct point needs the single check: the stacked path runs (its errors would fall back silently)."""
    pts = points_of(d, seed=9, count=6)
    screened = [grouped.screen(d, p) for p in pts]
    assert all(s is not None for s in screened)
    reports = grouped.stacked_verdicts(d, pts, screened, 0)
    assert all(r is not None and r.passed for r in reports)


def test_only_unclean_points_are_checked_alone(monkeypatch):
    d = analytic.builtin("softmax")
    pts = points_of(d, seed=6, count=6)
    calls = []
    single = lambda p: calls.append(p.seed) or evaluate(d, p)
    assert all(r.status == "pass" for r in evaluate_group(d, pts, single=single))
    assert calls == []
    # A forward that does not vmap (Python control flow on a value) is checked point by point.
    def forward(xp, Z):
        return d.forward(xp, Z) if float(xp.sum(Z)) < 1e300 else None

    no_vmap = analytic.Derivation(name="softmax_no_vmap", shapes=d.shapes, forward=forward, gradients=d.gradients, output=d.output)
    assert all(r.status == "pass" for r in evaluate_group(no_vmap, pts, single=single))
    assert calls == [p.seed for p in pts]


def test_the_group_stops_where_the_caller_stops():
    d = analytic.builtin("tanh_regression")
    wrong = altered(d, "tanh_sign", lambda g, p: {**g, "W": -g["W"]})
    calls = []
    reports = evaluate_group(wrong, points_of(wrong, count=8), single=lambda p: calls.append(p) or evaluate(wrong, p))
    assert next(reports).status == "fail"
    assert len(calls) == 1


def test_stacked_path_takes_no_point_that_needs_a_message(monkeypatch):
    """float32 gradients, a warning-worthy extra key, a modified argument: each goes to the single check."""
    d = analytic.builtin("relu_regression")
    f32 = altered(d, "relu_f32", lambda g, p: {k: np.asarray(v, np.float32) for k, v in g.items()})
    extra = altered(d, "relu_extra", lambda g, p: {**g, "bias": np.zeros(1)})
    pts = points_of(d, count=3)
    for wrong in (f32, extra):
        assert all(grouped.screen(wrong, p) is None for p in pts)
        together = list(evaluate_group(wrong, pts))
        assert [r.warnings + [w for g in r.gradients for w in g.warnings] for r in together] == [
            r.warnings + [w for g in r.gradients for w in g.warnings] for r in (evaluate(wrong, p) for p in pts)
        ]
        assert all(r.warnings or any(g.warnings for g in r.gradients) for r in together)


def test_search_counts_examples_and_points():
    d = analytic.builtin("linear_layer")
    report = check(d, examples=3, seed=2, database=False)
    assert report.passed, report.message
    assert (report.examples, report.points) == (3, 3 * VALUES_PER_SIZE)
    assert report.to_dict()["points"] == 3 * VALUES_PER_SIZE


def _detached_norm(xp, W, X):
    """f = ‖X W‖²_F / ‖W‖²_F with the denominator detached under torch (no-op in NumPy): vmaps, and
    autograd sees a constant where finite differences see a function of W."""
    V = W.detach() if hasattr(W, "detach") else W
    return xp.sum((X @ W) ** 2) / xp.sum(V * V)


def _stop_gradient(W, X):
    h = X @ W
    c = np.sum(W * W)
    return {"X": 2 * h @ W.T / c, "W": 2 * X.T @ h / c}


def test_a_forward_autograd_misreads_fails_alike_in_the_stack_and_alone():
    d = analytic.Derivation(name="detached_norm", shapes={"W": ("D", "M"), "X": ("N", "D")}, forward=_detached_norm, gradients=_stop_gradient)
    pts = points_of(d, seed=8)
    assert all(grouped.screen(d, p) is not None for p in pts)  # nothing odd before the references
    # The single check with σ measured (a single point that passes with σ = 0 reports the tighter bound it passed).
    for t, a in zip(evaluate_group(d, pts), (evaluate(d, p, noise=True) for p in pts), strict=True):
        blame = lambda r: [(g.param, g.status, g.blame, len(g.warnings)) for g in r.gradients]
        assert blame(t) == blame(a)
        # finite differences disagree with both, away from a kink: the graph is not the function, the gradient fails
        assert ("W", "fail", "graph", 1) in blame(t)


def test_a_random_forward_is_an_error_at_every_point():
    def forward(xp, X):
        keep = np.random.default_rng().random(tuple(X.shape)) > 0.5  # unseeded: another mask every call
        return xp.sum((X * xp.asarray(keep, dtype=xp.float64)) ** 2)

    d = analytic.Derivation(name="dropout_everywhere", shapes={"X": ("N", "D")}, forward=forward, gradients=lambda X: {"X": X})
    pts = [draw_point(d, {"N": 3, "D": 4}, j) for j in range(8)]
    reports = list(evaluate_group(d, pts))
    assert all(r.status == "error" and "not deterministic" in r.message for r in reports)
