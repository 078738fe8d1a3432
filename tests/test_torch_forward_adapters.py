"""``torch_forward=`` with every adapter, wherever it is defined: the three-witness check runs (autograd available),
and a wrong line of a course backward is named (the slip reads the torch forward's intermediates)."""

import numpy as np

from tests.course_layers import affine_backward, affine_forward, softmax_loss
from tests.torch_forwards import affine_torch, softmax_loss_torch
from verigrad import Derivation, check
from verigrad.analytic import integers


def _affine(backward) -> Derivation:
    return Derivation.from_forward_backward("affine", affine_forward, backward, shapes={"x": ("N", "D"), "w": ("D", "M"), "b": ("M",)},
                                            torch_forward=affine_torch)


def affine_backward_doubled_dw(dout, cache):
    x, w, _b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = 2 * x.reshape(x.shape[0], -1).T @ dout
    db = np.sum(dout, axis=0)
    return dx, dw, db


def test_a_right_course_layer_with_a_torch_forward_passes_with_three_witnesses():
    report = check(_affine(affine_backward), examples=3, seed=0, database=False)
    assert report.status == "pass", report.message
    assert report.autograd_available is not False and not any("autograd was not available" in w for w in report.warnings)


def test_the_wrong_line_of_a_course_backward_is_named_through_its_torch_forward():
    report = check(_affine(affine_backward_doubled_dw), examples=5, seed=0, database=False)
    g = next(g for g in report.gradients if g.param == "w")
    assert (report.status, g.status, g.blame) == ("fail", "fail", "analytic")
    assert g.slip is not None, g.slip_reason
    assert "dw = 2 * x.reshape" in g.slip.source


def test_from_loss_takes_a_torch_forward():
    d = Derivation.from_loss("softmax_loss", softmax_loss, shapes={"x": ("N", "C")}, data={"y": integers(0, "C", shape=("N",))},
                             torch_forward=softmax_loss_torch)
    report = check(d, examples=3, seed=0, database=False)
    assert report.status == "pass", report.message
    assert report.autograd_available is not False
