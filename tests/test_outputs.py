"""Several outputs: a forward returning a tuple or a dict of arrays, with ``output=`` a tuple/dict of shapes
or read off the forward; the gradients get ``grad_output`` in the same structure, each part drawn at random."""

import numpy as np
import pytest

from verigrad import Derivation
from verigrad.checks import check
from verigrad.checks.report import ERROR, FAIL, PASS

SHAPES = {"x": ("N", "D"), "W": ("D", "H")}
DIMS = {"N": (1, 3), "D": (1, 3), "H": (1, 3)}


def forward_tuple(xp, x, W):
    """Two outputs of different shapes: h = tanh(xW) (N, H) and s = Σ_j x_j² per row (N,)."""
    return xp.tanh(x @ W), xp.sum(x * x, axis=1)


def grads_tuple(x, W, grad_output):
    G_h, G_s = grad_output
    h = np.tanh(x @ W)
    da = G_h * (1 - h**2)
    return {"x": da @ W.T + 2 * x * G_s[:, None], "W": x.T @ da}


def grads_tuple_forgets_s(x, W, grad_output):
    G_h, _ = grad_output
    da = G_h * (1 - np.tanh(x @ W) ** 2)
    return {"x": da @ W.T, "W": x.T @ da}


def run(d, examples=4):
    return check(d, examples=examples, seed=5, database=False)


def failing(r):
    return [g.param for g in r.gradients if g.status == FAIL]


@pytest.mark.parametrize("output", [(("N", "H"), ("N",)), None], ids=["declared", "read_off_the_forward"])
def test_tuple_outputs_right_pass_and_a_forgotten_output_fails_naming_the_gradient(output):
    right = Derivation(name="two_out", shapes=SHAPES, output=output, forward=forward_tuple, gradients=grads_tuple, dims=DIMS)
    r = run(right)
    assert r.status == PASS, r.message
    assert r.autograd_available and r.namespace is None  # three witnesses
    wrong = Derivation(name="two_out_wrong", shapes=SHAPES, output=output, forward=forward_tuple, gradients=grads_tuple_forgets_s, dims=DIMS)
    r = run(wrong)
    assert r.status == FAIL and failing(r) == ["x"]


def test_a_declared_tuple_output_makes_a_flat_output_of_the_summed_sizes():
    d = Derivation(name="two_out", shapes=SHAPES, output=(("N", "H"), ("N",)), forward=forward_tuple, gradients=grads_tuple)
    assert d.is_layer and d.outputs.kind == "tuple" and d.outputs.names == ("0", "1")
    assert d.output_shape({"N": 2, "D": 3, "H": 4}) == (2 * 4 + 2,)


def forward_dict(xp, x, W):
    return {"h": xp.tanh(x @ W), "s": xp.sum(x * x, axis=1)}


def grads_dict(x, W, grad_output):
    return grads_tuple(x, W, (grad_output["h"], grad_output["s"]))


def grads_dict_swapped(x, W, grad_output):
    G_h, G_s = grad_output["h"], grad_output["s"]
    h = np.tanh(x @ W)
    da = G_h * (1 - h**2)
    return {"x": da @ W.T + 2 * x * G_s[:, None], "W": -(x.T @ da)}


@pytest.mark.parametrize("output", [{"s": ("N",), "h": ("N", "H")}, None], ids=["declared", "read_off_the_forward"])
def test_dict_outputs_right_pass_and_wrong_fail_naming_the_gradient(output):
    r = run(Derivation(name="dict_out", shapes=SHAPES, output=output, forward=forward_dict, gradients=grads_dict, dims=DIMS))
    assert r.status == PASS, r.message
    r = run(Derivation(name="dict_wrong", shapes=SHAPES, output=output, forward=forward_dict, gradients=grads_dict_swapped, dims=DIMS))
    assert r.status == FAIL and failing(r) == ["W"]


def test_grad_output_comes_in_the_forwards_structure_each_part_drawn_at_random():
    seen = []

    def spy(x, W, grad_output):
        seen.append(grad_output)
        return grads_dict(x, W, grad_output)

    d = Derivation(name="spy", shapes=SHAPES, output={"h": ("N", "H"), "s": ("N",)}, forward=forward_dict, gradients=spy)
    x, W = np.arange(6.0).reshape(2, 3) / 7, np.ones((3, 2)) / 3
    assert check(d, at={"x": x, "W": W}, seed=1).status == PASS
    g = seen[0]
    assert isinstance(g, dict) and list(g) == ["h", "s"]
    assert g["h"].shape == (2, 2) and g["s"].shape == (2,)
    assert len(np.unique(np.concatenate([g["h"].ravel(), g["s"]]))) == 6  # random entries, not a constant


def test_a_forward_that_returns_another_structure_than_declared_is_one_error_line():
    d = Derivation(name="short", shapes=SHAPES, output=(("N", "H"), ("N",), ("N",)), forward=forward_tuple, gradients=grads_tuple)
    r = run(d, examples=1)
    assert r.status == ERROR
    assert "forward returned a tuple of 2; output= declares a tuple of 3" in r.message and "\n" not in r.message


def test_a_part_of_another_shape_than_declared_is_named():
    dims = {"N": (2, 2), "D": (1, 2), "H": (3, 3)}  # N != H: the second output is (N,), not (H,)
    d = Derivation(name="shape", shapes=SHAPES, output=(("N", "H"), ("H",)), forward=forward_tuple, gradients=grads_tuple, dims=dims)
    r = run(d, examples=2)
    assert r.status == ERROR
    assert "forward's output 1 has shape" in r.message and "expected" in r.message


@pytest.mark.parametrize(("output", "needle"), [({}, "empty dict"), ({"": ("N",)}, "non-empty strings"), ((("N",), ("Z",)), "'Z'")])
def test_malformed_several_outputs_are_refused_when_built(output, needle):
    with pytest.raises(ValueError, match=needle):
        Derivation(name="bad", shapes=SHAPES, output=output, forward=forward_tuple, gradients=grads_tuple)


def test_output_expressions_of_parts_are_kept_at_least_one():
    def fwd(xp, x):
        return x[:, :-2] * 2.0, x[:, 2:] * 3.0

    def grads(x, grad_output):
        a, b = grad_output
        dx = np.zeros_like(x)
        dx[:, :-2] += 2.0 * a
        dx[:, 2:] += 3.0 * b
        return {"x": dx}

    d = Derivation(name="crop", shapes={"x": ("N", "D")}, output=(("N", "D-2"), ("N", "D-2")), forward=fwd, gradients=grads)
    assert d.dim_range("D")[0] == 3
    assert run(d).status == PASS


def test_grad_output_may_be_given_at_a_point_in_the_forwards_structure():
    x, W = np.arange(6.0).reshape(2, 3) / 7, np.ones((3, 2)) / 3
    G_h, G_s = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([2.0, -1.0])
    seen = []

    def spy(x, W, grad_output):
        seen.append(grad_output)
        return grads_tuple(x, W, grad_output)

    d = Derivation(name="at_tuple", shapes=SHAPES, output=(("N", "H"), ("N",)), forward=forward_tuple, gradients=spy)
    assert check(d, at={"x": x, "W": W, "grad_output": (G_h, G_s)}).status == PASS
    assert np.array_equal(seen[0][0], G_h) and np.array_equal(seen[0][1], G_s)
    d = Derivation(name="at_dict", shapes=SHAPES, output={"h": ("N", "H"), "s": ("N",)}, forward=forward_dict, gradients=grads_dict)
    assert check(d, at={"x": x, "W": W, "grad_output": {"s": G_s, "h": G_h}}).status == PASS
    r = check(d, at={"x": x, "W": W, "grad_output": {"h": G_h, "s": G_h}})
    assert r.status == ERROR and "grad_output's part for output 's' has shape (2, 2), expected (2,)" in r.message


def test_a_layer_forward_returning_out_and_cache_points_to_the_adapter():
    def course_forward(xp, x, W):
        return x @ W, (x, W)

    d = Derivation(name="cache", shapes=SHAPES, forward=course_forward, gradients=lambda x, W, grad_output: {"x": x, "W": W})
    r = run(d, examples=1)
    assert r.status == ERROR
    assert "forward returned a tuple of 2 whose items are not all arrays" in r.message and "from_forward_backward" in r.message
