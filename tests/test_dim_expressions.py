"""Sizes written as expressions of other sizes ("H-2", "4*H", "G*Cg", "(H+2*P-K)//S+1"), and a layer whose
output shape is read off its forward."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verigrad import Derivation, DerivationError
from verigrad.checks import check
from verigrad.checks.limits import point_bytes
from verigrad.checks.search.points import draw_point, infer_sizes, sizes_strategy
from verigrad.checks.search.replay import check_replay, parse_replay

# --- a "valid" 1-D window sum: out[n, i] = X[n, i] + X[n, i+1] + X[n, i+2]; out: (N, H-2) -----------------


def window_forward(xp, X):
    return X[:, :-2] + X[:, 1:-1] + X[:, 2:]


def window_gradients(X, grad_output):
    dX = np.zeros_like(X)
    for k in range(3):
        dX[:, k : k + grad_output.shape[1]] += grad_output
    return {"X": dX}


def window_wrong_unless_short(X, grad_output):
    """Right when H-2 <= 1 (one window); forgets the last window's overlap otherwise."""
    dX = window_gradients(X, grad_output)["X"]
    if grad_output.shape[1] > 1:
        dX[:, -1] = 0.0
    return {"X": dX}


def window(gradients=window_gradients, **changes):
    spec = {"name": "window", "shapes": {"X": ("N", "H")}, "forward": window_forward, "gradients": gradients, "output": ("N", "H-2")}
    return Derivation(**{**spec, **changes})


# --- an LSTM-like gate matmul: X:(N, D), W:(D, 4*H), out:(N, 4*H) --------------------------------------------


def gates(**changes):
    spec = {
        "name": "gates",
        "shapes": {"X": ("N", "D"), "W": ("D", "4*H")},
        "forward": lambda xp, X, W: X @ W,
        "gradients": lambda X, W, grad_output: {"X": grad_output @ W.T, "W": X.T @ grad_output},
        "output": ("N", "4 * H"),
    }
    return Derivation(**{**spec, **changes})


def test_names_inside_expressions_are_the_free_dims_and_expressions_are_computed():
    d = gates()
    assert d.symbols == ("N", "D", "H")
    assert set(d.expressions) == {"4*H", "4 * H"}
    assert d.shape_of("W", {"N": 2, "D": 3, "H": 5}) == (3, 20)
    assert d.output_shape({"N": 2, "D": 3, "H": 5}) == (2, 20)
    assert d.all_sizes({"N": 2, "D": 3, "H": 5})["4*H"] == 20


def test_a_bare_name_in_parentheses_is_the_name():
    d = Derivation(name="p", shapes={"x": ("(N)",)}, forward=lambda xp, x: xp.sum(x), gradients=lambda x: {"x": np.ones_like(x)})
    assert d.shapes["x"] == ("N",)
    assert d.expressions == ()


@pytest.mark.parametrize(
    ("dim", "needle"),
    [
        pytest.param("H**2", "'H**2' is not allowed", id="power"),
        pytest.param("H/2", "'H/2' is not allowed", id="true-division"),
        pytest.param("__import__('os').getcwd()", "is not allowed", id="call"),
        pytest.param("H.real", "'H.real' is not allowed", id="attribute"),
        pytest.param("1.5*H", "'1.5' is not allowed", id="float"),
        pytest.param("H if H else 2", "is not allowed", id="conditional"),
        pytest.param("H-", "is not a valid expression", id="syntax"),
        pytest.param("2*3", "names no dim", id="no-name"),
        pytest.param("seed+1", "reserved name 'seed'", id="reserved"),
    ],
)
def test_an_expression_outside_the_grammar_is_refused_with_the_name(dim, needle):
    with pytest.raises(DerivationError) as info:
        Derivation(name="bad", shapes={"x": ("N", dim)}, forward=lambda xp, x: xp.sum(x), gradients=lambda x: {"x": np.ones_like(x)})
    text = str(info.value)
    assert text.startswith("derivation 'bad':")
    assert needle in text
    assert "\n" not in text


def test_lower_bounds_are_derived_so_every_size_is_at_least_one():
    assert window().dim_range("H") == (3, 8)
    assert window().dim_range("N") == (1, 8)
    d = window(output=("N", "H-2"), dims={"H": (1, 20)})
    assert d.dim_range("H") == (3, 20)


def test_a_derivation_whose_expressions_cannot_be_at_least_one_is_refused():
    with pytest.raises(DerivationError) as info:
        window(dims={"H": (1, 2)})
    text = str(info.value)
    assert text.startswith("derivation 'window':")
    assert "'H-2'" in text and "H in 1..2" in text


def two_dim(**changes):
    spec = {
        "name": "crop",
        "shapes": {"X": ("H",), "K": ("K",)},
        "forward": lambda xp, X, K: xp.sum(X[: X.shape[0] - K.shape[0]] ** 2) + xp.sum(K),
        "gradients": lambda X, K, grad_output: {},
        "output": ("H-K",),
    }
    return Derivation(**{**spec, **changes})


def test_a_relation_between_dims_narrows_both_ends_and_draws_only_consistent_sizes():
    d = two_dim()
    assert d.dim_range("H") == (2, 8) and d.dim_range("K") == (1, 7)
    assert not d.space.exact

    @settings(max_examples=200, database=None)
    @given(sizes_strategy(d))
    def every_draw_is_valid(sizes):
        assert list(sizes) == ["H", "K"]
        assert sizes["H"] - sizes["K"] >= 1

    every_draw_is_valid()


def test_a_relation_no_sizes_satisfy_is_refused():
    with pytest.raises(DerivationError, match=r"derivation 'crop': .*'H-K'"):
        two_dim(dims={"H": (1, 3), "K": (3, 5)})


def test_a_convolution_output_size_with_floor_division():
    d = Derivation(
        name="conv_size",
        shapes={"x": ("H",), "w": ("K",)},
        forward=lambda xp, x, w: x[: (x.shape[0] + 2 - w.shape[0]) // 2 + 1] * 1.0,
        gradients=lambda x, w, grad_output: {},
        output=("(H+2*1-K)//2+1",),
        dims={"K": (1, 12)},
    )
    assert d.dim_range("K") == (1, 10)  # (H + 2 - K)//2 + 1 >= 1 needs K <= H + 2 <= 10
    assert d.output_shape({"H": 5, "K": 3}) == (3,)
    assert not d.valid_sizes({"H": 1, "K": 6})


def test_a_right_layer_with_an_expression_output_passes():
    report = check(window(), examples=15, seed=3, database=False)
    assert report.passed, report.message


def test_a_wrong_layer_is_shrunk_on_the_free_dims_and_replays_with_them_only():
    d = window(window_wrong_unless_short, name="window_wrong")
    report = check(d, examples=30, seed=3, database=False)
    assert report.status == "fail"
    assert report.shapes == {"N": 1, "H": 4}  # the smallest H at which H-2 > 1
    assert report.counterexample["shapes"] == {"N": 1, "H": 4}
    spec = report.replay.split("--replay ")[1]
    assert spec == f"N=1,H=4,seed={report.point_seed}"
    again = check(d, replay=parse_replay(spec), database=False)
    assert again.status == "fail"
    assert again.point_seed == report.point_seed


def test_replay_takes_free_dims_and_refuses_sizes_that_make_a_dim_zero():
    d = window()
    check_replay(d, {"N": 2, "H": 5})
    with pytest.raises(ValueError, match="unknown dim"):
        check_replay(d, {"N": 2, "H": 5, "H-2": 3})
    with pytest.raises(ValueError, match=r"H-2=0 for derivation 'window'"):
        check_replay(d, {"N": 2, "H": 2})
    refused = check(d, replay=({"N": 2, "H": 2}, 1), database=False)
    assert refused.status == "error" and "H-2=0" in refused.message


def test_points_have_the_computed_shapes_and_name_free_dims():
    p = draw_point(gates(), {"N": 2, "D": 3, "H": 2}, seed=1)
    assert p.sizes == {"N": 2, "D": 3, "H": 2}
    assert p.params["W"].shape == (3, 8)
    assert p.grad_output.shape == (2, 8)


def test_sizes_are_read_off_arrays_and_solved_from_expressions():
    d = gates()
    at = {"X": np.ones((2, 3)), "W": np.ones((3, 12))}
    assert infer_sizes(d, at) == {"N": 2, "D": 3, "H": 3}
    with pytest.raises(ValueError, match=r"grad_output has shape \(2, 13\), but its dim '4 \* H' is 12"):
        infer_sizes(d, {**at, "grad_output": np.ones((2, 13))})
    with pytest.raises(ValueError, match=r"W has shape \(3, 13\)"):
        infer_sizes(d, {"X": np.ones((2, 3)), "W": np.ones((3, 13))})
    w = window()
    assert infer_sizes(w, {"X": np.ones((2, 6)), "grad_output": np.ones((2, 4))}) == {"N": 2, "H": 6}
    with pytest.raises(ValueError, match=r"its dim 'H-2' is 4"):
        infer_sizes(w, {"X": np.ones((2, 6)), "grad_output": np.ones((2, 3))})


def test_a_check_at_given_arrays_with_expression_dims():
    report = check(gates(), at={"X": np.arange(6.0).reshape(2, 3), "W": np.linspace(-1, 1, 24).reshape(3, 8)})
    assert report.passed, report.message
    assert report.shapes == {"N": 2, "D": 3, "H": 2}


def test_memory_estimate_bounds_the_expression_dims():
    d = gates()
    # X: 2*3, W: 3*(4*5), output 2*(4*5): entries 6 + 60 + 40
    assert point_bytes(d, {"N": 2, "D": 3, "H": 5}) == pytest.approx(8.0 * 16 * 106)
    crop = two_dim()
    # H-K at most H-1 over K >= 1: X 6, K 2, output 5
    assert point_bytes(crop, {"H": 6, "K": 2}) == pytest.approx(8.0 * 16 * (6 + 2 + 5))


@given(st.integers(1, 40), st.integers(1, 40))
def test_expression_values_match_python_arithmetic(h, k):
    d = Derivation(
        name="arith",
        shapes={"x": ("H", "K")},
        forward=lambda xp, x: xp.sum(x),
        gradients=lambda x, grad_output: {},
        output=("(H+2*3-K)//2+1", "-(-H//K)", "H*K-K+1"),
        dims={"H": (1, 40), "K": (1, 40)},
    )
    sizes = {"H": h, "K": k}
    expected = ((h + 6 - k) // 2 + 1, -(-h // k), h * k - k + 1)
    if all(v >= 1 for v in expected):
        assert d.output_shape(sizes) == expected
    else:
        assert not d.valid_sizes(sizes)


# --- a layer without output=: its output shape is read off the forward ----------------------------------------


def test_a_layer_without_output_is_recognised_by_its_grad_output_argument():
    d = window(output=None)
    assert d.is_layer and d.output is None
    p = draw_point(d, {"N": 2, "H": 5}, seed=4)
    assert p.grad_output.shape == (2, 3)


def test_a_layer_without_output_passes_when_right_and_fails_when_wrong():
    assert check(window(output=None), examples=10, seed=5, database=False).passed
    wrong = check(window(window_wrong_unless_short, output=None, name="w2"), examples=20, seed=5, database=False)
    assert wrong.status == "fail"
    assert [g.param for g in wrong.failures] == ["X"]


def test_a_layer_without_output_at_given_arrays():
    report = check(window(output=None), at={"X": np.linspace(0, 1, 10).reshape(2, 5)})
    assert report.passed, report.message


def test_an_array_forward_without_grad_output_says_a_layer_takes_grad_output():
    d = Derivation(name="vec", shapes={"X": ("N", "D")}, forward=lambda xp, X: X * 2, gradients=lambda X: {"X": 2 * np.ones_like(X)})
    report = check(d, examples=3, seed=1, database=False)
    assert report.status == "error"
    text = " ".join(g.message or "" for g in report.gradients) + (report.message or "")
    assert "expected a scalar" in text and "grad_output" in text


def test_a_layer_without_output_whose_forward_raises_is_reported_as_the_forward_raising():
    def forward(xp, X):
        raise ValueError("boom")

    d = Derivation(name="raiser", shapes={"X": ("N", "H")}, forward=forward, gradients=lambda X, grad_output: {"X": X})
    report = check(d, examples=3, seed=1, database=False)
    assert report.status == "error"
    assert report.message == "forward raised: ValueError: boom"
