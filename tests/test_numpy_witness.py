"""The witness of NumPy-only code (checks/verdict/fd_only.py, checks/verdict/complex_witness.py): the complex step
where the forward follows it, verified by finite differences; wide-step finite differences where it drops the
imaginary part; steps sized for a float32 forward; the report says which witness judged each gradient and the
smallest error it could have seen, and the NumPy-only note is said once."""

from __future__ import annotations

import numpy as np
import pytest

from verigrad import Derivation
from verigrad.checks import check
from verigrad.checks.report import Blame, RunReport, Status, Witness
from verigrad.checks.report.terminal import render
from verigrad.checks.search.explore import VALUES_ALONE

from .course_layers import affine_backward, affine_forward, conv_backward_naive, conv_forward_naive, max_pool_backward_naive, max_pool_forward_naive

pytest_plugins = ["pytester"]

EXAMPLES, SEED = 4, 5
#: A planted error this far below max|∂f/∂param| (at one entry) must be caught: above the smallest error the
#: NumPy-only witness lets through (≤ 1e-10 of max|reference| on the course layers), below today's 5e-9.
PLANTED = 1e-9
AFFINE = {"x": ("N", "D"), "w": ("D", "M"), "b": ("M",)}
CONV = {
    "shapes": {"x": ("N", "C", "H", "W"), "w": ("F", "C", "K", "K"), "b": ("F",)},
    "hyper": {"conv_param": [{"stride": 1, "pad": 1}]},
    "dims": {"N": (1, 2), "C": (1, 2), "H": (3, 4), "W": (3, 4), "F": (1, 2), "K": (1, 3)},
}


def _planted(backward, which: int):
    """``backward`` with one entry of its ``which``-th gradient off by PLANTED·max|gradient|."""

    def wrong(dout, cache):
        grads = list(backward(dout, cache))
        g = grads[which].copy()
        g.flat[0] += PLANTED * np.max(np.abs(g))
        grads[which] = g
        return tuple(grads)

    return wrong


def _run(d: Derivation):
    return check(d, examples=EXAMPLES, seed=SEED, database=False)


def test_complex_step_judges_an_analytic_numpy_forward():
    report = _run(Derivation.from_forward_backward("affine", affine_forward, affine_backward, shapes=AFFINE))
    assert report.passed, report.message
    assert {g.witness for g in report.gradients} == {Witness.COMPLEX_STEP}
    assert all(g.resolution is not None and g.resolution <= 1e-10 for g in report.gradients)
    assert report.points == report.examples * VALUES_ALONE  # forwards one at a time: fewer draws per size


def test_error_of_1e_9_relative_is_caught_by_the_complex_step():
    report = _run(Derivation.from_forward_backward("affine_off", affine_forward, _planted(affine_backward, 1), shapes=AFFINE))
    assert report.status == Status.FAIL
    assert [g.param for g in report.failures] == ["w"] and report.failures[0].blame == Blame.ANALYTIC


def test_real_buffer_refuses_the_complex_step_and_wide_differences_judge():
    report = _run(Derivation.from_forward_backward("conv", conv_forward_naive, conv_backward_naive, **CONV))
    assert report.passed, report.message
    for g in report.gradients:
        assert g.witness == Witness.FINITE_DIFFERENCES and "real array" in g.witness_refused
        # A convolution is linear in each entry: wide steps carry rounding alone, and a bias whose Σ G cancels takes a
        # step up to 64 H (reference/_fd.py::other_steps): ≤ 1e-10 of max|reference| for x, w and b.
        assert g.resolution <= 1e-10


def test_error_of_1e_9_relative_is_caught_by_wide_differences():
    d = Derivation.from_forward_backward("conv_off", conv_forward_naive, _planted(conv_backward_naive, 1), **CONV)
    report = _run(d)
    assert report.status == Status.FAIL
    assert [g.param for g in report.failures] == ["w"] and report.failures[0].blame == Blame.ANALYTIC


def _abs_forward(x, w):
    """Drops the imaginary part of x without a warning: np.abs of a complex array is real, and the sum with x − x
    (a complex zero) keeps the result complex, so nothing but the value of the complex step shows it."""
    out = (np.abs(x) + (x - x)) @ w
    return out, (x, w)


def _abs_backward(dout, cache):
    x, w = cache
    return np.sign(x) * (dout @ w.T), np.abs(x).T @ dout


def test_dropped_imaginary_part_is_caught_by_finite_differences_not_trusted():
    d = Derivation.from_forward_backward("abs_dot", _abs_forward, _abs_backward, shapes={"x": ("N", "D"), "w": ("D", "M")})
    report = _run(d)
    assert report.passed, report.message  # no false alarm: the complex step of x is 0, and refused
    by = {g.param: g for g in report.gradients}
    assert by["x"].witness == Witness.FINITE_DIFFERENCES and "not analytic" in by["x"].witness_refused
    assert by["w"].witness == Witness.COMPLEX_STEP


def _affine32_forward(x, w, b):
    """A textbook time layer's habit: the output allocated in float32."""
    out = np.empty((x.shape[0], w.shape[1]), dtype="f")
    out[...] = x @ w + b
    return out, (x, w)


def _affine32_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def _affine32_backward_off(dout, cache):
    dx, dw, db = _affine32_backward(dout, cache)
    dw = dw.copy()
    dw.flat[0] *= 1.03  # a few percent off at one entry
    return dx, dw, db


@pytest.mark.parametrize(("backward", "passes"), [(_affine32_backward, True), (_affine32_backward_off, False)])
def test_float32_numpy_forward_is_judged_in_its_own_precision(backward, passes):
    report = _run(Derivation.from_forward_backward("affine32", _affine32_forward, backward, shapes=AFFINE))
    assert report.passed is passes, report.message
    assert any("coarser than float64" in w for w in report.warnings)
    if not passes:
        assert [g.param for g in report.failures] == ["w"] and report.failures[0].blame == Blame.ANALYTIC


def test_numpy_only_note_is_said_once():
    runs = [_run(Derivation.from_forward_backward(f"affine{k}", affine_forward, affine_backward, shapes=AFFINE)) for k in range(3)]
    text = render(RunReport(runs, seed=SEED))
    assert text.count("no autograd for") == 1 and "affine0, affine1, affine2" in text
    assert "autograd was not available" not in text and text.count("vs complex step") == 9


def _affine16_forward(x, w, b):
    out = np.empty((x.shape[0], w.shape[1]), dtype=np.float16)
    out[...] = x @ w + b
    return out, (x, w)


def test_float16_numpy_forward_is_not_failed_for_steps_sized_for_float64():
    report = _run(Derivation.from_forward_backward("affine16", _affine16_forward, _affine32_backward, shapes=AFFINE))
    assert report.passed, report.message
    assert {g.witness for g in report.gradients} == {Witness.FINITE_DIFFERENCES}  # no complex step in float16
    assert any("coarser than float64" in w for w in report.warnings)


NUMPY_ONLY_MODULE = '''
import numpy as np
from verigrad import Derivation

def affine_forward(x, w):
    return x @ w, (x, w)

def affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout

SHAPES = {"x": ("N", "D"), "w": ("D", "M")}
first = Derivation.from_forward_backward("first", affine_forward, affine_backward, shapes=SHAPES)
second = Derivation.from_forward_backward("second", affine_forward, affine_backward, shapes=SHAPES)
'''


def test_plugin_says_numpy_only_once_not_a_warning_per_derivation(pytester):
    pytester.makepyfile(test_numpy_only=NUMPY_ONLY_MODULE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--verigrad-examples", "2", "--verigrad-seed", "7")
    result.assert_outcomes(passed=2)
    text = result.stdout.str()
    assert text.count("no autograd for first, second") == 1 and "autograd was not available" not in text


def _sigmoid_loss(xp, z):
    """−Σ log(1 − σ(z)): for z ≈ 13, 1 − σ(z) ≈ 2e-6 is a multiple of ulp(1), rounded by ~5e-11 relative, and moves
    only when z moves by ~1e-11 — far more than a jitter of a few ulps."""
    return -xp.sum(xp.log(1 - 1 / (1 + xp.exp(-z))))


def test_rounding_of_a_coarsely_quantized_intermediate_is_measured_at_the_steps_scale():
    from verigrad.reference import BatchedObjective, forward_noise

    z = np.array([13.0, 12.7, 13.3, 12.9])
    d = Derivation("sigmoid_tail", shapes={"z": ("N",)}, forward=_sigmoid_loss, gradients=lambda z: {"z": 1 / (1 + np.exp(-z))})
    ev = BatchedObjective(d, {"z": z})
    jitter = forward_noise(ev, np.random.default_rng(0))
    noise = forward_noise(ev, np.random.default_rng(0), line=True)
    # The rounding the differences carry at the usual step: their deviation from the exact slope σ(z), times h.
    h = 1e-5 * z
    slips = [
        abs(ev.at_entries("z", np.array([k, k]), np.array([z[k] + h[k], z[k] - h[k]]))[0] @ [1, -1] - 2 * h[k] / (1 + np.exp(-z[k])))
        for k in range(4)
    ]
    assert jitter < max(slips) / 100  # the jitter misses it ...
    assert noise > max(slips) / 10  # ... the line sees it


def _tanh_sum(xp, x, w, b):
    return xp.sum(xp.tanh(x @ w + b) ** 2)


def test_the_line_agrees_with_the_jitter_where_the_jitter_resolves_the_rounding():
    from verigrad.reference import BatchedObjective, forward_noise

    rng = np.random.default_rng(3)
    params = {"x": rng.standard_normal((4, 5)), "w": rng.standard_normal((5, 3)), "b": rng.standard_normal(3)}
    d = Derivation("affine_plain", shapes={"x": ("N", "D"), "w": ("D", "M"), "b": ("M",)}, forward=_tanh_sum, gradients=lambda x, w, b: {})
    ev = BatchedObjective(d, params)
    jitter, both = forward_noise(ev, np.random.default_rng(0)), forward_noise(ev, np.random.default_rng(0), line=True)
    assert jitter <= both <= 10 * jitter


POOL = {"shapes": {"x": ("N", "C", "H", "W")}, "hyper": {"pool_param": [{"pool_height": 2, "pool_width": 2, "stride": 2}]}}
#: One window whose two largest values are 1e-4 apart: a kink within the wide step H ≈ 5e-3, far outside the usual h ≈ 5e-6.
NEAR_TIE = np.array([[[[1.0, 1.0 - 1e-4], [0.3, -0.5]]]])


def _pool_last_of_near_ties(dout, cache):
    """A tie-tolerant argmax: the gradient goes to the last value within 1e-3 of the window's maximum."""
    x, _ = cache
    dx = np.zeros_like(x)
    window = x[0, 0].reshape(-1)
    k = np.flatnonzero(window >= window.max() - 1e-3)[-1]
    dx[0, 0].flat[k] = dout[0, 0, 0, 0]
    return (dx,)


def test_a_kink_within_the_wide_step_is_judged_sharply_by_the_piece_the_point_lies_on():
    at = {"x": NEAR_TIE, "pool_param": POOL["hyper"]["pool_param"][0], "grad_output": np.array([[[[1.3]]]])}
    right = check(Derivation.from_forward_backward("max_pool", max_pool_forward_naive, max_pool_backward_naive, **POOL), at=at)
    assert right.passed, right.message
    assert right.gradients[0].witness == Witness.FINITE_DIFFERENCES and right.gradients[0].resolution <= 1e-10
    wrong = check(Derivation.from_forward_backward("max_pool_ties", max_pool_forward_naive, _pool_last_of_near_ties, **POOL), at=at)
    assert wrong.status == Status.FAIL and wrong.failures[0].blame == Blame.ANALYTIC
