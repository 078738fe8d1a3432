"""Honest verdicts: a misbehaving forward is the forward's error and malformed or changing gradients are the
analytic side's, on every path (single point, points checked together, projection, the search)."""

import numpy as np
import pytest

from verigrad import Derivation
from verigrad.checks import check
from verigrad.checks.report import ERROR, PASS
from verigrad.checks.search import draw_point
from verigrad.checks.verdict import evaluate, evaluate_group, evaluate_projection

SHAPES = {"X": ("N", "D"), "W": ("D", "M")}
SIZES = {"N": 3, "D": 4, "M": 2}


def layer_gradients(X, W, grad_output):
    return {"X": grad_output @ W.T, "W": X.T @ grad_output}


def layer(forward, gradients=layer_gradients, name="layer"):
    return Derivation(name=name, shapes=SHAPES, output=("N", "M"), forward=forward, gradients=gradients)


def matmul(xp, X, W):
    return X @ W


GOOD = layer(matmul, name="good")


def points(d, count=3):
    return [draw_point(d, SIZES, 10 + j) for j in range(count)]


def every_path(d):
    """The report at one point from each path: single, stacked (first of a group), projection."""
    pts = points(d)
    return {
        "single": evaluate(d, pts[0]),
        "stacked": next(iter(evaluate_group(d, pts))),
        "projection": evaluate_projection(d, pts[0]),
    }


def test_the_good_layer_passes_on_every_path():
    for path, rep in every_path(GOOD).items():
        assert rep.status == PASS, (path, rep.message)


WRONG_OUTPUTS = {
    "transposed": (lambda xp, X, W: (X @ W).T, "forward returned an array of shape (2, 3), expected (3, 2) (output=('N', 'M'))"),
    "scalar": (lambda xp, X, W: xp.sum(X @ W), "forward returned an array of shape (), expected (3, 2) (output=('N', 'M'))"),
    "row": (lambda xp, X, W: xp.sum(X @ W, axis=0), "forward returned an array of shape (2,), expected (3, 2) (output=('N', 'M'))"),
}


@pytest.mark.parametrize("case", sorted(WRONG_OUTPUTS))
def test_an_output_of_another_shape_is_the_forwards_error_on_every_path(case):
    forward, line = WRONG_OUTPUTS[case]
    for path, rep in every_path(layer(forward)).items():
        assert rep.status == ERROR, (path, rep.status, rep.message)
        assert rep.message == line, path
        assert not rep.gradients  # nothing is blamed on the hand-derived side


def test_an_output_of_another_shape_is_an_error_of_the_search():
    rep = check(layer(lambda xp, X, W: (X @ W).T), examples=4, seed=0, database=False)
    assert rep.status == ERROR
    assert "forward returned an array of shape" in rep.message and "output=('N', 'M')" in rep.message


@pytest.mark.parametrize(
    ("forward", "dtype"),
    [
        (lambda xp, X, W: np.rint(X @ W).astype(np.int64) if xp.__name__.endswith("numpy") else xp.round(X @ W).to(xp.int64), "int64"),
        (lambda xp, X, W: (X @ W) > 0, "bool"),
    ],
    ids=["integer", "bool"],
)
def test_an_output_that_is_not_floating_point_is_the_forwards_error(forward, dtype):
    for path, rep in every_path(layer(forward)).items():
        assert rep.status == ERROR, (path, rep.status, rep.message)
        assert rep.message == f"forward returned an output of dtype {dtype}; a layer's output must be real floating point", path

