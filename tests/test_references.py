"""The two references agree with each other and with the built-ins' formulas; FD's error estimate holds."""

import numpy as np
import pytest

from verigrad import analytic
from verigrad.checks import draw_point
from verigrad.reference import H0, Heap, autograd_gradients, finite_differences, forward_value, steps_for

#: Built-ins drawn here by their sizes alone; those with hyperparameters, data or a seed are drawn per example
#: configuration and checked through check() in tests/test_builtins_reach.py.
BUILTINS = [d for d in analytic.builtins() if not d.has_inputs]


def sizes_of(d, n=3):
    return {s: n + k % 3 for k, s in enumerate(d.symbols)}


@pytest.mark.parametrize("d", BUILTINS, ids=lambda d: d.name)
def test_autograd_matches_the_hand_derived_builtin(d):
    p = draw_point(d, sizes_of(d), seed=11)
    extra = {"grad_output": p.grad_output} if d.is_layer else {}
    a = d.gradients(**p.params, **extra)
    t = autograd_gradients(d, p.params, p.grad_output)
    for k in d.check:
        np.testing.assert_allclose(a[k], t[k], rtol=1e-12, atol=1e-12 * np.max(np.abs(t[k])))


@pytest.mark.parametrize("d", BUILTINS, ids=lambda d: d.name)
def test_finite_differences_lie_within_their_own_error_estimate(d):
    p = draw_point(d, sizes_of(d), seed=12)
    t = autograd_gradients(d, p.params, p.grad_output)
    fd = finite_differences(d, p.params, p.grad_output)
    for k in d.check:
        est = fd.gradients[k]
        assert est.refined.all()  # default: every entry also at h/2 and h/4
        assert not est.nondifferentiable.any()
        assert np.all(np.abs(est.value - t[k]) <= est.error), k


def test_finite_differences_are_vectorized_and_counted():
    d = analytic.builtin("two_layer_relu")
    p = draw_point(d, {"N": 4, "D_in": 5, "H": 3, "D_out": 2}, seed=3)
    fd = finite_differences(d, p.params, refine=lambda name, est: np.zeros(est.value.shape, bool))
    entries = sum(v.size for v in p.params.values())
    assert fd.vectorized
    # base evaluation, jitter points, and two evaluations per entry
    assert 2 * entries < fd.evaluations <= 2 * entries + 16


def test_declared_kink_within_the_step_is_marked_nondifferentiable():
    d = analytic.builtin("relu_regression")
    p = draw_point(d, {"N": 2, "D": 2, "M": 2}, seed=5)
    X, W = p.params["X"], p.params["W"]
    W[:, 0] -= (X[0] @ W[:, 0]) / X[0, 0] * np.array([1.0, 0.0])  # h[0, 0] = 0 exactly up to rounding
    fd = finite_differences(d, p.params)
    nd = fd.gradients["W"].nondifferentiable
    assert nd[0, 0] and nd[1, 0]  # both entries of W's first column move h[0, 0]
    assert not nd[:, 1].any()


def test_step_scales_with_the_entry():
    x = np.array([0.0, 1e-6, 3.0, -1e4])
    h = steps_for(x)
    rms = np.sqrt(np.mean(x * x))
    assert np.all(h > 0)
    assert h[3] == pytest.approx(H0 * 1e4)  # a large entry steps by its own size
    assert h[0] == h[1] == h[2] == pytest.approx(H0 * rms)  # small entries step by the array's scale


def test_forward_value_rejects_non_scalars():
    d = analytic.Derivation(name="vec", shapes={"X": ("N",)}, forward=lambda xp, X: X * 2, gradients=lambda X: {"X": 2 * X})
    with pytest.raises(Exception, match="expected a scalar"):
        forward_value(d, {"X": np.ones(3)})


def test_freed_memory_is_given_back_only_past_the_slack():
    trims, rss = [], iter([100, 150, 700, 120, 130])
    h = Heap(slack=500, trim=trims.append, resident=lambda: next(rss))  # base 100
    h.settle()  # 150: within the slack
    assert trims == []
    h.settle()  # 700: 600 over the base, trimmed; the new base is read after the trim (120)
    assert trims == [0] and h.base == 120
    h.settle()  # 130
    assert trims == [0]
