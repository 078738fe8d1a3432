"""Honest verdicts: a misbehaving forward is the forward's error and malformed or changing gradients are the
analytic side's, on every path (single point, points checked together, projection, the search)."""

import numpy as np
import pytest

from verigrad import Derivation
from verigrad.checks import check
from verigrad.checks.report import ERROR, FAIL, PASS, Blame, Problem
from verigrad.checks.search import draw_point
from verigrad.checks.verdict import evaluate, evaluate_group, evaluate_projection, judged

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


class ArrayRaises:
    """An object NumPy asks for an array, and which refuses."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("no array today")


def ragged(X, W, grad_output):
    return {**layer_gradients(X, W, grad_output), "W": [[1.0, 2.0], [3.0]]}


def requires_grad(X, W, grad_output, factor=1.0):
    import torch

    return {**layer_gradients(X, W, grad_output), "W": torch.tensor(factor * X.T @ grad_output, requires_grad=True)}


def array_raises(X, W, grad_output):
    return {**layer_gradients(X, W, grad_output), "W": ArrayRaises()}


MALFORMED = {
    "ragged": (ragged, "ValueError: setting an array element with a sequence"),
    "array_raises": (array_raises, "RuntimeError: no array today"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_gradient_values_are_one_failure_line_on_every_path(case):
    gradients, reason = MALFORMED[case]
    for path, rep in every_path(layer(matmul, gradients, name=case)).items():
        assert rep.status == FAIL, (path, rep.status, rep.message)
        by_param = {g.param: g for g in rep.gradients}
        assert by_param["X"].status == PASS, path  # the readable gradient is still judged
        w = by_param["W"]
        assert w.status == FAIL and w.problem == Problem.DTYPE and w.blame == Blame.ANALYTIC, path
        assert w.message.startswith(f"gradient of W cannot be read as an array: {reason}"), (path, w.message)
        assert "\n" not in w.message
        assert rep.message == w.message


def test_a_tensor_that_still_requires_grad_is_judged_on_its_values_on_every_path():
    right = layer(matmul, requires_grad, name="requires_grad")
    for path, rep in every_path(right).items():
        assert rep.status == PASS, (path, rep.status, rep.message)
    doubled = layer(matmul, lambda X, W, grad_output: requires_grad(X, W, grad_output, factor=2.0), name="doubled")
    for path, rep in every_path(doubled).items():
        w = {g.param: g for g in rep.gradients}["W"]
        assert w.status == FAIL and w.problem is None and w.blame == Blame.ANALYTIC, (path, w.message)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_gradient_values_fail_the_search(case):
    gradients, reason = MALFORMED[case]
    rep = check(layer(matmul, gradients, name=case), examples=4, seed=0, database=False)
    assert rep.status == FAIL
    assert rep.message.startswith(f"gradient of W cannot be read as an array: {reason}"), rep.message


class EveryNth:
    """Gradients right on every call but the n-th ones, where ∂f/∂W is doubled."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, X, W, grad_output):
        self.calls += 1
        g = layer_gradients(X, W, grad_output)
        return {**g, "W": 2 * g["W"]} if self.calls % self.n == 0 else g


NOT_DETERMINISTIC = "gradients are not deterministic: ∂f/∂W differs between two calls at the same point"


def test_gradients_that_change_between_calls_are_an_error_naming_the_gradient_on_every_path():
    for path, rep in every_path(layer(matmul, EveryNth(2), name="alternating")).items():
        assert rep.status == ERROR, (path, rep.status, rep.message)
        assert rep.message == NOT_DETERMINISTIC, path


def test_gradients_that_raise_on_a_second_call_are_not_deterministic():
    calls = []

    def once(X, W, grad_output):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("called twice")
        return layer_gradients(X, W, grad_output)

    rep = evaluate(layer(matmul, once), points(GOOD)[0])
    assert rep.status == ERROR
    assert rep.message == "gradients are not deterministic: a second call at the same point raised RuntimeError: called twice"


@pytest.mark.parametrize("n", [3, 5, 7, 50])
def test_a_gradient_wrong_on_one_call_in_n_never_passes_the_search(n):
    rep = check(layer(matmul, EveryNth(n), name=f"every_{n}"), examples=60, seed=0, database=False)
    assert rep.status == ERROR, (rep.status, rep.message)
    assert rep.message == NOT_DETERMINISTIC


class WrongOn:
    """Gradients with ∂f/∂W doubled on the given calls (counted from 1), right on every other."""

    def __init__(self, *calls):
        self.wrong, self.calls = set(calls), 0

    def __call__(self, X, W, grad_output):
        self.calls += 1
        g = layer_gradients(X, W, grad_output)
        return {**g, "W": 2 * g["W"]} if self.calls in self.wrong else g


def test_a_stacked_point_checked_again_alone_keeps_the_gradients_it_was_screened_with():
    # The screen calls twice per point: calls 3 and 4 (the second point's, both wrong) agree, the stack
    # fails that point, and its single check calls again (5, 6) and gets right values, which must not pass.
    reports = list(evaluate_group(layer(matmul, WrongOn(3, 4)), points(GOOD, count=2)))
    assert [r.status for r in reports] == [PASS, ERROR], [r.message for r in reports]
    assert reports[1].message == NOT_DETERMINISTIC
    assert not reports[1].gradients


def test_deterministic_gradients_returned_in_a_new_array_each_call_pass():
    fresh = lambda X, W, grad_output: {k: np.array(v, copy=True) for k, v in layer_gradients(X, W, grad_output).items()}
    for path, rep in every_path(layer(matmul, fresh)).items():
        assert rep.status == PASS, (path, rep.message)


def tiny_square(scale, dtype, factor=1.0):
    """f = scale·Σ X²/2, its gradient scale·X returned in ``dtype`` (times ``factor``: 1 is right)."""
    return Derivation(
        name=f"tiny_{np.dtype(dtype).name}",
        shapes={"X": ("N",)},
        forward=lambda xp, X: scale * xp.sum(X**2) / 2,
        gradients=lambda X: {"X": (factor * scale * X).astype(dtype)},
    )


@pytest.mark.parametrize(("scale", "dtype"), [(1e-6, np.float16), (1e-40, np.float32)], ids=["float16", "float32"])
def test_a_correct_low_precision_gradient_of_subnormal_values_passes(scale, dtype):
    d = tiny_square(scale, dtype)
    pt = draw_point(d, {"N": 4}, 0)
    assert np.any((np.abs(d.gradients(**pt.params)["X"]) < np.finfo(dtype).tiny) & (pt.params["X"] != 0))  # subnormal indeed
    rep = check(d, examples=20, seed=0, database=False)
    assert rep.status == PASS, rep.message


@pytest.mark.parametrize(("scale", "dtype"), [(1e-6, np.float16), (1e-40, np.float32), (1.0, np.float16)], ids=["float16", "float32", "normal"])
def test_a_wrong_low_precision_gradient_still_fails(scale, dtype):
    rep = check(tiny_square(scale, dtype, factor=2.0), examples=20, seed=0, database=False)
    assert rep.status == FAIL, rep.message


def square(scale, factor=1.0, name="square"):
    """f = scale·Σ X²/2 with the gradient scale·X (times ``factor``: 1 is right)."""
    return Derivation(name=name, shapes={"X": ("N",)}, forward=lambda xp, X: scale * xp.sum(X**2) / 2, gradients=lambda X: {"X": factor * scale * X})


def verdicts(d, count=4):
    return [g for j in range(count) for g in evaluate(d, draw_point(d, {"N": 3}, j)).gradients]


def test_a_gradient_with_some_reference_above_rounding_is_judged():
    assert all(judged(g) for g in verdicts(square(1.0)))
    assert all(judged(g) and g.status == FAIL for g in verdicts(square(1.0, factor=2.0)))


@pytest.mark.parametrize(("scale", "why"), [(0.0, "zero"), (1e-320, "underflow")])
def test_a_reference_zero_or_underflowing_everywhere_judges_nothing(scale, why):
    wrong = verdicts(square(scale, factor=2.0, name=why))
    # A wrong gradient passes at these points (nothing in the values can tell it): judged() says so.
    assert all(g.status == PASS for g in wrong)
    assert not any(judged(g) for g in wrong)
    assert not any(judged(g) for g in verdicts(square(scale, name=why)))
