"""``check(d, at=point)`` takes the Point ``draw_point`` returns as it takes its arrays: parameters, grad_output,
hyperparameters, data and a seeded forward's seed; anything else that is not a dict is refused in one line."""

import numpy as np
import pytest

import verigrad
from verigrad.checks.report import ERROR

#: A plain net, a layer (grad_output), a layer with hyperparameters and data, a seeded layer, labels as data.
NAMES = ("two_layer_relu", "linear_layer", "conv2d", "dropout", "softmax_cross_entropy_labels")


def _without_times(rep) -> dict:
    d = rep.to_dict()
    d.pop("duration_s", None)
    return d


@pytest.mark.parametrize("name", NAMES)
def test_drawn_point_is_checked_as_its_arrays(name):
    d = verigrad.builtin(name)
    p = verigrad.draw_point(d, verigrad.check(d, examples=1, seed=1, database=False).shapes, 7)
    arrays = {**p.params, **p.hyper, **p.data}
    if p.grad_output is not None:
        arrays["grad_output"] = p.grad_output
    if p.forward_seed is not None:
        arrays["seed"] = p.forward_seed
    given = verigrad.check(d, at=p)
    assert given.status == verigrad.check(d, at=arrays).status != ERROR
    assert _without_times(given) == _without_times(verigrad.check(d, at=arrays))


def test_drawn_point_with_a_wrong_gradient_fails_there():
    d = verigrad.builtin("two_layer_relu")
    wrong = verigrad.Derivation(
        name="relu_wrong_w2",
        shapes=d.shapes,
        forward=d.forward,
        gradients=lambda **p: {k: (2 * v if k == "W2" else v) for k, v in d.gradients(**p).items()},
    )
    p = verigrad.draw_point(wrong, {"N": 3, "D_in": 2, "H": 4, "D_out": 2}, 0)
    rep = verigrad.check(wrong, at=p)
    assert rep.status == verigrad.Status.FAIL
    assert [g.param for g in rep.failures] == ["W2"]
    w2 = next(g for g in rep.gradients if g.param == "W2")
    np.testing.assert_array_equal(w2.analytic, 2 * d.gradients(**p.params)["W2"])  # judged at the drawn point itself


def test_at_that_is_not_a_dict_is_refused_in_one_line():
    rep = verigrad.check(verigrad.builtin("two_layer_relu"), at=[1.0, 2.0])
    assert rep.status == ERROR
    assert rep.message == "at= takes a dict of the parameters' arrays (or a Point from draw_point), not a list"
