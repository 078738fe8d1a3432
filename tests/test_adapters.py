"""Adapters: course code pasted unchanged (tests/course_layers.py) — ``(out, cache)`` forwards with their
``backward(dout, cache)``, a ``loss(x, y) -> (loss, dx)``, a layer class — checked with only the calling
convention declared. Right ones pass, planted mistakes fail naming the gradient, and misuse is one line.
These forwards call NumPy themselves, so they are checked against finite differences alone."""

import functools

import numpy as np
import pytest

from tests import course_layers as L
from verigrad import Derivation
from verigrad.checks import check
from verigrad.checks.report import ERROR, FAIL, PASS, Kind, Witness

EXAMPLES = 4
SMALL = {"N": (1, 2), "D": (1, 3), "M": (1, 3)}


def checked(d: Derivation, examples: int = EXAMPLES):
    return check(d, examples=examples, seed=3, database=False)


def failing(report) -> list[str]:
    return [g.param for g in report.gradients if g.status == FAIL]


def affine(backward=L.affine_backward, name="affine"):
    return Derivation.from_forward_backward(
        name, L.affine_forward, backward, shapes={"x": ("N", "D"), "w": ("D", "M"), "b": ("M",)}, dims=SMALL
    )


def test_affine_right_passes_without_autograd():
    r = checked(affine())
    assert r.status == PASS, r.message
    assert [g.param for g in r.gradients] == ["x", "w", "b"]
    assert r.namespace == "numpy" and r.autograd_available is False
    assert {g.witness for g in r.gradients} == {Witness.COMPLEX_STEP}  # an affine map follows the complex step


def test_affine_bias_not_summed_over_the_batch_fails_on_b():
    r = checked(affine(L.affine_backward_no_batch_sum, "affine_no_sum"))
    assert r.status == FAIL and failing(r) == ["b"]


def test_arguments_are_matched_by_name_not_order():
    d = Derivation.from_forward_backward(
        "affine_by_name", L.affine_forward, L.affine_backward, shapes={"b": ("M",), "w": ("D", "M"), "x": ("N", "D")}, dims=SMALL
    )
    # the backward's tuple is read in the order of shapes: (dx, dw, db) is then wrong for b, w and x
    r = checked(d)
    assert r.status == FAIL


def relu(backward=L.relu_backward, name="relu"):
    return Derivation.from_forward_backward(name, L.relu_forward, backward, shapes={"x": ("N", "D")}, dims={"N": (1, 2), "D": (1, 3)})


def test_relu_with_in_place_writes_right_passes_and_wrong_mask_fails():
    assert checked(relu()).status == PASS
    r = checked(relu(L.relu_backward_wrong_mask, "relu_wrong"))
    assert r.status == FAIL and failing(r) == ["x"]


CONV_SHAPES = {"x": ("N", "C", "H", "W"), "w": ("F", "C", 2, 2), "b": ("F",)}
CONV_DIMS = {"N": (1, 2), "C": (1, 2), "H": (2, 4), "W": (2, 4), "F": (1, 2)}


def conv(backward, conv_param, name):
    forward = functools.partial(L.conv_forward_naive, conv_param=conv_param)
    return Derivation.from_forward_backward(name, forward, backward, shapes=CONV_SHAPES, dims=CONV_DIMS)


def test_naive_convolution_with_np_pad_right_passes():
    r = checked(conv(L.conv_backward_naive, {"stride": 1, "pad": 1}, "conv_naive"), examples=3)
    assert r.status == PASS, r.message
    assert r.autograd_available is False


def test_convolution_wrong_only_at_pad_zero_fails_there_on_w():
    assert checked(conv(L.conv_backward_wrong_at_pad0, {"stride": 1, "pad": 1}, "conv_pad1"), examples=3).status == PASS
    r = checked(conv(L.conv_backward_wrong_at_pad0, {"stride": 1, "pad": 0}, "conv_pad0"), examples=3)
    assert r.status == FAIL and failing(r) == ["w"]


POOL_DIMS = {"N": (1, 2), "C": (1, 2), "H": (2, 4), "W": (2, 4)}


def pool(backward, stride, name):
    forward = functools.partial(L.max_pool_forward_naive, pool_param={"pool_height": 2, "pool_width": 2, "stride": stride})
    return Derivation.from_forward_backward(name, forward, backward, shapes={"x": ("N", "C", "H", "W")}, dims=POOL_DIMS)


def test_max_pool_right_passes_and_assignment_fails_only_with_overlapping_windows():
    assert checked(pool(L.max_pool_backward_naive, 1, "pool")).status == PASS
    assert checked(pool(L.max_pool_backward_assigns, 2, "pool_assign_s2")).status == PASS
    r = checked(pool(L.max_pool_backward_assigns, 1, "pool_assign_s1"))
    assert r.status == FAIL and failing(r) == ["x"]


LSTM_SHAPES = {"x": ("N", "D"), "prev_h": ("N", "H"), "prev_c": ("N", "H"), "Wx": ("D", "4*H"), "Wh": ("H", "4*H"), "b": ("4*H",)}


def lstm(backward, name):
    return Derivation.from_forward_backward(
        name, L.lstm_step_forward, backward, shapes=LSTM_SHAPES, outputs=2, dims={"N": (1, 2), "D": (1, 2), "H": (1, 2)}
    )


def test_lstm_step_with_two_outputs_right_passes():
    r = checked(lstm(L.lstm_step_backward, "lstm_step"))
    assert r.status == PASS, r.message
    assert [g.param for g in r.gradients] == list(LSTM_SHAPES)


def test_lstm_step_that_drops_dnext_c_fails():
    r = checked(lstm(L.lstm_step_backward_drops_dnext_c, "lstm_no_dc"))
    assert r.status == FAIL
    assert "prev_c" in failing(r)


def test_dense_layer_class_right_passes_and_wrong_bias_fails_on_b():
    shapes = {"x": ("N", "D"), "W": ("D", "M"), "b": ("M",)}
    assert checked(Derivation.from_layer("dense", L.Dense, shapes=shapes, dims=SMALL)).status == PASS
    r = checked(Derivation.from_layer("dense_wrong", L.DenseWrongBias, shapes=shapes, dims=SMALL))
    assert r.status == FAIL and failing(r) == ["b"]


def test_a_layer_instance_is_copied_per_call():
    layer = L.Dense()
    d = Derivation.from_layer("dense_instance", layer, shapes={"x": ("N", "D"), "W": ("D", "M"), "b": ("M",)}, dims=SMALL)
    assert checked(d).status == PASS
    assert layer.W is None and not hasattr(layer, "x")


# --- misuse: one line naming the function and what it returned -------------------------------------------


def test_a_required_argument_nothing_declares_is_refused_when_built():
    with pytest.raises(ValueError, match=r"derivation 'conv': forward conv_forward_naive\(x, w, b, conv_param\) takes 'conv_param'"):
        Derivation.from_forward_backward("conv", L.conv_forward_naive, L.conv_backward_naive, shapes=CONV_SHAPES)


def test_a_declared_name_the_forward_does_not_take_is_refused():
    with pytest.raises(ValueError, match=r"does not take 'z'"):
        Derivation.from_forward_backward("relu", L.relu_forward, L.relu_backward, shapes={"x": ("N",), "z": ("N",)})


def test_outputs_must_be_a_positive_count():
    with pytest.raises(ValueError, match=r"outputs= must be"):
        Derivation.from_forward_backward("relu", L.relu_forward, L.relu_backward, shapes={"x": ("N",)}, outputs=0)


def test_a_forward_without_cache_is_one_error_line():
    d = Derivation.from_forward_backward("no_cache", lambda x: x * 2.0, lambda dout, cache: dout, shapes={"x": ("N",)})
    r = checked(d, examples=1)
    assert r.status == ERROR
    assert "returned an array of shape" in r.message and "expected (out, cache)" in r.message
    assert "\n" not in r.message


def test_a_backward_with_the_wrong_count_fails_naming_it():
    d = Derivation.from_forward_backward(
        "short", L.affine_forward, lambda dout, cache: L.affine_backward(dout, cache)[:2],
        shapes={"x": ("N", "D"), "w": ("D", "M"), "b": ("M",)}, dims=SMALL,
    )
    r = checked(d, examples=1)
    assert r.status == FAIL
    said = "returned a tuple of 2; expected 3 array(s), the gradients of x, w, b in the order of shapes"
    assert all(said in (g.message or "") for g in r.gradients)


def test_a_layer_without_backward_is_refused():
    class NoBackward:
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match=r"has no backward\(\) method"):
        Derivation.from_layer("nb", NoBackward, shapes={"x": ("N",)})


def test_a_layer_gradient_left_nowhere_is_named():
    class Forgets(L.Dense):
        def backward(self, grad):
            self.dW = self.x.T @ grad
            return grad @ self.W.T

    r = checked(Derivation.from_layer("forgets", Forgets, shapes={"x": ("N", "D"), "W": ("D", "M"), "b": ("M",)}, dims=SMALL), examples=1)
    assert r.status == FAIL
    assert "left no gradient of b on the layer (looked for db, grad_b, b_grad, d_b)" in r.gradients[-1].message


def test_loss_returning_only_a_number_is_one_error_line():
    d = Derivation.from_loss("just_loss", lambda x: float(np.sum(x**2)), shapes={"x": ("N",)})
    r = checked(d, examples=1)
    assert r.status == ERROR and "expected (loss, dx)" in r.message


# --- with data= and hyper=: labels drawn per point, configurations searched -----------------------------


def test_softmax_loss_with_integer_labels_right_passes_and_a_missing_mean_fails():
    from verigrad.analytic import integers

    labels = {"y": integers(0, "C", shape=("N",))}
    dims = {"N": (1, 3), "C": (1, 4)}
    r = checked(Derivation.from_loss("softmax_loss", L.softmax_loss, shapes={"x": ("N", "C")}, data=labels, dims=dims))
    assert r.status == PASS, r.message
    r = checked(Derivation.from_loss("softmax_no_mean", L.softmax_loss_no_mean, shapes={"x": ("N", "C")}, data=labels, dims=dims))
    assert r.status == FAIL and failing(r) == ["x"]
    assert "y" in r.counterexample["data"]


CONV_GRID = [{"stride": 1, "pad": 1}, {"stride": 1, "pad": 0}, {"stride": 2, "pad": 1}]
CONV_K = {"x": ("N", "C", "H", "W"), "w": ("F", "C", "K", "K"), "b": ("F",)}
CONV_K_DIMS = {"N": (1, 2), "C": (1, 2), "H": (3, 4), "W": (3, 4), "F": (1, 2), "K": (1, 3)}


def test_convolution_configurations_are_searched_and_the_one_that_is_wrong_is_reported():
    right = Derivation.from_forward_backward(
        "conv", L.conv_forward_naive, L.conv_backward_naive, shapes=CONV_K, hyper={"conv_param": CONV_GRID}, dims=CONV_K_DIMS
    )
    assert checked(right, examples=6).status == PASS
    wrong = Derivation.from_forward_backward(
        "conv_pad0", L.conv_forward_naive, L.conv_backward_wrong_at_pad0, shapes=CONV_K, hyper={"conv_param": CONV_GRID}, dims=CONV_K_DIMS
    )
    r = checked(wrong, examples=10)
    assert r.status == FAIL and failing(r) == ["w"]
    assert r.counterexample["hyper"]["conv_param"]["pad"] == 0
    assert "conv_param=" in r.replay


def test_max_pool_assignment_is_caught_with_overlapping_windows_in_the_counterexample():
    grid = [{"pool_height": 2, "pool_width": 2, "stride": 2}, {"pool_height": 2, "pool_width": 2, "stride": 1}]
    d = Derivation.from_forward_backward(
        "pool_assign", L.max_pool_forward_naive, L.max_pool_backward_assigns, shapes={"x": ("N", "C", "H", "W")},
        hyper={"pool_param": grid}, dims=POOL_DIMS,
    )
    r = checked(d, examples=10)
    assert r.status == FAIL and r.counterexample["hyper"]["pool_param"]["stride"] == 1
    assert r.failures[0].diagnosis.kind == Kind.ASSIGNMENT, r.failures[0].diagnosis.sentence  # a NumPy-only layer: J by differences
