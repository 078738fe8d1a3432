"""A scalar loss returned as a size-1 array, (1,) or (1, 1), by a forward without ``output=``: every witness reads
it as the scalar it holds (NumPy, torch autograd, the vmapped stack, finite differences alone), with a warning saying
so; the verdicts are those of the same forward returning the scalar."""

from __future__ import annotations

import numpy as np
import pytest

from verigrad.analytic import Derivation
from verigrad.checks.report import Status
from verigrad.checks.search import check

SHAPES = {"X": ("N", "D"), "W": ("D", "M")}
DIMS = {"N": (1, 3), "D": (1, 3), "M": (1, 2)}


def _loss(xp, X, W):
    return xp.sum((X @ W) ** 2)


def _right(X, W):
    r = 2 * (X @ W)
    return {"X": r @ W.T, "W": X.T @ r}


def _wrong(X, W):
    r = 2 * (X @ W)
    return {"X": r @ W.T, "W": -(X.T @ r)}


def _shaped(shape):
    return lambda xp, X, W: xp.reshape(_loss(xp, X, W), shape)


def _numpy_only(shape):
    return lambda xp, X, W: np.array(np.sum((np.asarray(X) @ np.asarray(W)) ** 2)).reshape(shape)


def _verdict(report):
    return report.status, [(g.param, g.status, g.diagnosis and g.diagnosis.kind, g.max_abs_err) for g in report.gradients]


@pytest.mark.parametrize("shape", [(1,), (1, 1)], ids=["(1,)", "(1, 1)"])
@pytest.mark.parametrize("mode", ["exhaustive", "projection"])
@pytest.mark.parametrize("gradients", [_right, _wrong], ids=["right", "wrong"])
def test_a_size_one_loss_is_read_as_the_scalar_with_a_warning(shape, mode, gradients):
    plain = check(Derivation(name="s", shapes=SHAPES, dims=DIMS, forward=_loss, gradients=gradients), examples=2, seed=3, database=False, mode=mode)
    d = Derivation(name="s", shapes=SHAPES, dims=DIMS, forward=_shaped(shape), gradients=gradients)
    report = check(d, examples=2, seed=3, database=False, mode=mode)
    assert _verdict(report) == _verdict(plain)
    assert report.status == (Status.PASS if gradients is _right else Status.FAIL)
    assert f"the forward returned its scalar objective as an array of shape {shape}: read as the scalar it holds" in report.warnings


def test_at_a_given_point_and_with_finite_differences_alone_the_same():
    at = {"X": np.arange(6.0).reshape(2, 3) - 2.0, "W": np.arange(6.0).reshape(3, 2) / 3.0}
    shaped = check(Derivation(name="s", shapes=SHAPES, forward=_shaped((1, 1)), gradients=_right), at=at)
    assert shaped.status == Status.PASS and any("shape (1, 1)" in w for w in shaped.warnings)
    numpy_only = Derivation(name="s", shapes=SHAPES, dims=DIMS, forward=_numpy_only((1,)), gradients=_wrong, namespaces=("numpy",))
    report = check(numpy_only, examples=2, seed=3, database=False)
    assert report.status == Status.FAIL and [g.param for g in report.failures] == ["W"]
    assert any("shape (1,)" in w for w in report.warnings)


def test_a_loss_of_more_than_one_entry_is_still_refused():
    d = Derivation(name="s", shapes=SHAPES, dims={"N": (2, 3), "D": (1, 2), "M": (1, 2)}, forward=lambda xp, X, W: X @ W, gradients=_right)
    report = check(d, examples=1, seed=0, database=False)
    assert report.status == Status.ERROR and "expected a scalar" in report.message


def _row_sums(xp, X):
    return xp.sum(X, axis=1)  # shape (N,): a vector, of length 1 at N=1


def test_a_vector_that_has_length_one_at_small_sizes_is_no_scalar_loss():
    # Read as a scalar at N=1, these gradients (of Σ X) would pass there: the forward is refused at every size instead.
    ones = lambda X: {"X": np.ones_like(X)}
    d = Derivation(name="rows", shapes={"X": ("N", "D")}, dims={"N": (1, 3), "D": (1, 2)}, forward=_row_sums, gradients=ones)
    for report in (check(d, at={"X": np.ones((1, 2))}), check(d, examples=3, seed=0, database=False)):  # at= first: its own look
        assert report.status == Status.ERROR and "expected a scalar" in report.message, (report.status, report.message)
