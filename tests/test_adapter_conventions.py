"""Code as it is written: a backward that takes a hyperparameter of its own by name, and loss layers as classes
(``forward(x, t) -> loss``, ``backward(dout=1) -> dx``) with their labels as data."""

import numpy as np
import pytest

from verigrad import Derivation, check
from verigrad.analytic import DerivationError, one_hot


def pool_forward(A_prev, hparameters, mode="max"):
    """A MOOC-style 1-D pooling over windows of size f with stride s: (out, cache)."""
    f, s = hparameters["f"], hparameters["stride"]
    n = (A_prev.shape[1] - f) // s + 1
    A = np.zeros((A_prev.shape[0], n))
    for i in range(n):
        window = A_prev[:, i * s : i * s + f]
        A[:, i] = np.max(window, axis=1) if mode == "max" else np.mean(window, axis=1)
    return A, (A_prev, hparameters)


def pool_backward(dA, cache, mode="max"):
    A_prev, hparameters = cache
    f, s = hparameters["f"], hparameters["stride"]
    dA_prev = np.zeros_like(A_prev)
    for i in range(dA.shape[1]):
        window = A_prev[:, i * s : i * s + f]
        if mode == "max":
            mask = window == np.max(window, axis=1, keepdims=True)
            dA_prev[:, i * s : i * s + f] += mask * dA[:, i : i + 1]
        else:
            dA_prev[:, i * s : i * s + f] += dA[:, i : i + 1] / f
    return dA_prev


def _pool(mode_grid):
    return Derivation.from_forward_backward(
        "pool", pool_forward, pool_backward, shapes={"A_prev": ("N", 7)}, output=("N", 3),
        hyper={"hparameters": [{"f": 3, "stride": 2}], "mode": mode_grid},
    )


@pytest.mark.parametrize("mode", ["max", "average"])
def test_a_backward_gets_the_hyperparameter_it_takes_by_name(mode):
    report = check(_pool([mode]), examples=4, seed=0, database=False)
    assert report.status == "pass", report.message


class SoftmaxWithLoss:
    """A textbook loss layer: the labels t are one-hot, backward(dout=1) returns dx."""

    def forward(self, x, t):
        self.t = t
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.y = e / e.sum(axis=1, keepdims=True)
        return -np.sum(t * np.log(self.y + 1e-300)) / x.shape[0]

    def backward(self, dout=1):
        return (self.y - self.t) * dout / self.t.shape[0]


class SoftmaxWithLossNoMean(SoftmaxWithLoss):
    def backward(self, dout=1):
        return (self.y - self.t) * dout  # the batch size forgotten


def _loss(layer):
    return Derivation.from_loss("softmax_with_loss", layer, shapes={"x": ("N", "C")}, data={"t": one_hot(("N", "C"))})


def test_a_loss_class_is_checked_with_dout_1_and_its_labels_as_data():
    report = check(_loss(SoftmaxWithLoss), examples=4, seed=0, database=False)
    assert report.status == "pass", report.message


def test_a_wrong_loss_class_is_caught_and_its_factor_named():
    report = check(_loss(SoftmaxWithLossNoMean), examples=6, seed=0, database=False)
    g = report.gradients[0]
    assert (report.status, g.status) == ("fail", "fail")
    assert g.diagnosis.kind == "scale" and g.diagnosis.details.get("scale_form") == "N", g.diagnosis.sentence


def test_from_layer_loss_true_is_the_same_check():
    d = Derivation.from_layer("swl", SoftmaxWithLoss, shapes={"x": ("N", "C")}, data={"t": one_hot(("N", "C"))}, loss=True)
    assert check(d, examples=3, seed=0, database=False).status == "pass"


def test_a_loss_layer_has_one_output():
    with pytest.raises(DerivationError, match="outputs= must be 1"):
        Derivation.from_layer("swl", SoftmaxWithLoss, shapes={"x": ("N", "C")}, data={"t": one_hot(("N", "C"))}, loss=True, outputs=2)
