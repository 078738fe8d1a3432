"""Custom Functions of the kinds public packages ship (tests/real_functions.py), tested as their own suites test them:
``gradcheck``/``gradgradcheck`` calls with the usual keywords, float64 and float32, inputs on kinks — with the import
swapped to verigrad's. The right Functions pass unchanged; each planted mistake is caught, and the message names
the input, its entries, the blame and (the backward being Python) the wrong line."""

import inspect
import sys
import warnings

import pytest
import torch

from verigrad import gradcheck, gradgradcheck

from . import real_functions as R

TorchGradcheckError = sys.modules["torch.autograd.gradcheck"].GradcheckError
torch_gradcheck = sys.modules["torch.autograd.gradcheck"].gradcheck


def _randn(*shape, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_(True)


def sparsemax(cls=R.Sparsemax):
    return lambda z: cls.apply(z, -1)


def smooth_l1(cls=R.SmoothL1):
    return lambda x, y: cls.apply(x, y, 0.5)


def clamp(cls=R.Clamp):
    return lambda x: cls.apply(x, -0.5, 0.5)


def logsumexp(cls=R.LogSumExp):
    return lambda x: cls.apply(x, 1)


def topk(cls=R.TopK):
    return lambda x: cls.apply(x, 2)


def _kink_inputs():
    """Inputs exactly on the kinks: a sparsemax row whose entries equal τ, values at the clamp bounds, ties of max."""
    z = torch.tensor([[1.0, 0.0, 0.0, -1.0], [0.3, -0.2, 0.9, 0.1]], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([-0.5, 0.5, 0.2, -0.9, 1.3, 0.0], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.0, 0.3, -2.0, 0.7], dtype=torch.float64, requires_grad=True)
    return z, x, a, b


def test_kinks_torch_reports_as_mismatches_pass():
    """At the ties torch's central difference reads the average of the two sides, against one side's gradient."""
    z, x, a, b = _kink_inputs()
    for func, inputs in [(sparsemax(), (z,)), (clamp(), (x,)), (R.MaxPair.apply, (a, b))]:
        assert torch_gradcheck(func, inputs, eps=1e-6, atol=1e-4, raise_exception=False) is False
        assert gradcheck(func, inputs, eps=1e-6, atol=1e-4) is True


# The suites as written (float64, torch's usual keywords): every call passes unchanged with verigrad's gradcheck.
RIGHT = {
    "sparsemax": (sparsemax(), lambda s: (_randn(3, 5, seed=s),), {"eps": 1e-6, "atol": 1e-4}),
    "smooth_l1": (smooth_l1(), lambda s: (_randn(4, 3, seed=s), _randn(4, 3, seed=s + 100)), {"eps": 1e-6, "atol": 1e-4, "rtol": 1e-3}),
    "rms_norm": (R.RMSNorm.apply, lambda s: (_randn(3, 6, seed=s), _randn(6, seed=s + 100)), {"eps": 1e-6, "atol": 1e-4}),
    "layer_norm": (R.LayerNorm.apply, lambda s: (_randn(3, 5, seed=s), _randn(5, seed=s + 1), _randn(5, seed=s + 2)), {"nondet_tol": 1e-10}),
    "swish": (R.Swish.apply, lambda s: (_randn(7, seed=s),), {"check_forward_ad": True}),
    "gelu_tanh": (R.GeluTanh.apply, lambda s: (_randn(2, 5, seed=s),), {"raise_exception": False}),
    "linear_bias_relu": (R.LinearBiasRelu.apply, lambda s: (_randn(4, 3, seed=s), _randn(5, 3, seed=s + 1), _randn(5, seed=s + 2)), {}),
    "logsumexp": (logsumexp(), lambda s: (_randn(3, 4, seed=s),), {"check_undefined_grad": False}),
    "topk": (topk(), lambda s: (_randn(3, 6, seed=s),), {"atol": 1e-5, "rtol": 1e-3}),
    "polar": (R.PolarToCartesian.apply, lambda s: (_randn(4, seed=s).abs().detach().requires_grad_(True), _randn(4, seed=s + 1)), {}),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(RIGHT))
def test_a_right_function_passes_its_suite_unchanged(name, seed):
    func, inputs, keywords = RIGHT[name]
    assert torch_gradcheck(func, inputs(seed), **keywords) is True  # the suite passes with torch's, as written
    assert gradcheck(func, inputs(seed), **keywords) is True


def test_a_linear_bias_relu_at_a_relu_tie_and_an_argument_without_grad():
    x, W, b = _randn(3, 4, seed=3), _randn(4, 4, seed=4), _randn(4, seed=5)
    with torch.no_grad():
        x[0] = 0.0
        b[1] = 0.0  # h[0, 1] = 0: exactly on relu's kink
    assert gradcheck(R.LinearBiasRelu.apply, (x, W, b)) is True
    assert gradcheck(R.LinearBiasRelu.apply, (x.detach(), W, b)) is True  # ctx.needs_input_grad[0] is False


def test_keywords_without_a_counterpart_are_accepted_with_a_warning():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert gradcheck(R.Swish.apply, (_randn(5, seed=0),), fast_mode=True, check_batched_grad=True) is True
    assert any("check_batched_grad, fast_mode" in str(w.message) for w in seen)


def _f32(*shapes, seed):
    return tuple(_randn(*shape, seed=seed + k, dtype=torch.float32) for k, shape in enumerate(shapes))


# float32, as extension suites write it (torch needs float64 or loosened tolerances; verigrad takes the keywords as given).
FLOAT32 = {
    "rms_norm": (R.RMSNorm.apply, R.RMSNormNoProjection.apply, lambda s: _f32((3, 6), (6,), seed=s)),
    "layer_norm": (R.LayerNorm.apply, R.LayerNormNoMeanTerm.apply, lambda s: _f32((3, 5), (5,), (5,), seed=s)),
    "smooth_l1": (smooth_l1(), smooth_l1(R.SmoothL1OuterBranchOff), lambda s: _f32((4, 3), (4, 3), seed=s)),
    "gelu_tanh": (R.GeluTanh.apply, R.GeluTanhHalfSlope.apply, lambda s: _f32((2, 5), seed=s)),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(FLOAT32))
def test_float32_passes_with_the_suites_keywords_and_a_planted_mistake_is_still_caught(name, seed):
    right, wrong, inputs = FLOAT32[name]
    assert torch_gradcheck(right, inputs(seed), eps=1e-3, atol=1e-3, rtol=1e-2) is True  # the suite as written, with torch's
    assert gradcheck(right, inputs(seed), eps=1e-3, atol=1e-3, rtol=1e-2) is True
    assert gradcheck(right, inputs(seed)) is True  # no tolerance needed: the error model of float32
    assert gradcheck(wrong, inputs(seed), raise_exception=False) is False
    with pytest.raises(TorchGradcheckError) as info:  # no line is named in float32; the same inputs widened name it
        gradcheck(wrong, inputs(seed))
    cls, statement = PLANTED[PLANTED_IN_FLOAT32[name]][3]
    assert f"in float64 (the inputs widened, autograd through the forward a witness): slip: line {_line_of(cls, statement)} `" in str(info.value)


@pytest.mark.parametrize("seed", [2, 9])
def test_a_constant_typo_that_loosened_float32_tolerances_pass_is_caught_without_them(seed):
    """The tolerances a float32 suite loosens to pass torch's check pass a typo in the backward's constant; verigrad
    needs none and catches it; given them, it accepts as the caller asked, and warns that the error model rejects it."""
    x = _f32((2, 5), seed=seed)
    assert torch_gradcheck(R.GeluTanhConstantTypo.apply, x, eps=1e-3, atol=1e-3, rtol=1e-2) is True
    assert gradcheck(R.GeluTanhConstantTypo.apply, x, raise_exception=False) is False
    with pytest.warns(UserWarning, match="the error model rejects"):
        gradcheck(R.GeluTanhConstantTypo.apply, x, eps=1e-3, atol=1e-3, rtol=1e-2)


def _line_of(cls, statement):
    """The line number of ``statement`` in ``cls.backward`` (under once_differentiable too)."""
    lines, first = inspect.getsourcelines(inspect.unwrap(vars(cls)["backward"]))
    (k,) = [k for k, text in enumerate(lines) if statement in text]
    return first + k


# Planted mistakes: (function, inputs, the wrong input's message, the statement the slip names).
PLANTED = {
    "sparsemax_factor": (
        sparsemax(R.SparsemaxNoCentring),
        lambda: (_randn(3, 5, seed=0),),
        "input 0",
        (R.SparsemaxNoCentring, "dz = s * (g - mean)"),
    ),
    "smooth_l1_one_branch": (
        smooth_l1(R.SmoothL1OuterBranchOff),
        lambda: (_randn(4, 3, seed=0), _randn(4, 3, seed=100)),
        "input 1",
        (R.SmoothL1OuterBranchOff, "dd = torch.where"),
    ),
    "rms_norm_wrong_term": (
        R.RMSNormNoProjection.apply,
        lambda: (_randn(3, 6, seed=0), _randn(6, seed=100)),
        "input 0",
        (R.RMSNormNoProjection, "(gw * x).mean"),
    ),
    "layer_norm_missing_term": (
        R.LayerNormNoMeanTerm.apply,
        lambda: (_randn(3, 5, seed=0), _randn(5, seed=1), _randn(5, seed=2)),
        "input 0",
        (R.LayerNormNoMeanTerm, "dx = r * (gw - xhat"),
    ),
    "clamp_leaks": (clamp(R.ClampLeaksBelow), lambda: (_randn(8, seed=2),), "input 0", (R.ClampLeaksBelow, "return g * inside")),
    "gelu_one_factor": (R.GeluTanhHalfSlope.apply, lambda: (_randn(2, 5, seed=0),), "input 0", (R.GeluTanhHalfSlope, "return g * dy")),
    "linear_transposed": (
        R.LinearBiasReluTransposed.apply,
        lambda: (_randn(4, 3, seed=0), _randn(3, 3, seed=1), _randn(3, seed=2)),
        "input 1",
        (R.LinearBiasReluTransposed, "dW = x.t() @ dh"),
    ),
    "logsumexp_shift": (logsumexp(R.LogSumExpUnshifted), lambda: (_randn(3, 4, seed=0),), "input 0", (R.LogSumExpUnshifted, "return g.unsqueeze")),
    "topk_one_position": (topk(R.TopKFirstOnly), lambda: (_randn(3, 6, seed=0),), "input 0", (R.TopKFirstOnly, "return dx.scatter")),
    "polar_sign": (
        R.PolarToCartesianSignSlip.apply,
        lambda: (_randn(4, seed=0), _randn(4, seed=1)),
        "input 1",
        (R.PolarToCartesianSignSlip, "dtheta = r * (gy * c + gx * s)"),
    ),
}


PLANTED_IN_FLOAT32 = {
    "rms_norm": "rms_norm_wrong_term",
    "layer_norm": "layer_norm_missing_term",
    "smooth_l1": "smooth_l1_one_branch",
    "gelu_tanh": "gelu_one_factor",
}


@pytest.mark.parametrize("name", list(PLANTED))
def test_a_planted_mistake_is_caught_and_located(name):
    func, inputs, wrong_input, slip = PLANTED[name]
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(func, inputs(), eps=1e-6, atol=1e-4)
    text = str(info.value)
    assert f"with respect to {wrong_input} (" in text or f", {wrong_input} (" in text
    assert "blame: analytic" in text and "worst entry input" in text
    cls, statement = slip
    assert f"slip: line {_line_of(cls, statement)} `" in text, text
    assert gradcheck(func, inputs(), raise_exception=False) is False


def test_a_transpose_is_diagnosed_as_one():
    func, inputs, _, _ = PLANTED["linear_transposed"]
    with pytest.raises(TorchGradcheckError, match=r"wrong layout \(transposed\)"):
        gradcheck(func, inputs())


# Second order: backwards written in differentiable torch operations, as double-backward-capable packages write them.
@pytest.mark.parametrize(
    "func, inputs",
    [
        (R.Swish.apply, lambda: (_randn(6, seed=0),)),
        (R.GeluTanh.apply, lambda: (_randn(2, 4, seed=1),)),
        (logsumexp(), lambda: (_randn(3, 4, seed=2),)),
    ],
    ids=["swish", "gelu_tanh", "logsumexp"],
)
def test_gradgradcheck_passes_double_differentiable_backwards(func, inputs):
    assert torch.autograd.gradgradcheck(func, inputs()) is True
    assert gradgradcheck(func, inputs(), eps=1e-6, atol=1e-4, rtol=1e-3) is True


def test_gradgradcheck_catches_the_missing_second_order_term_that_gradcheck_cannot_see():
    x = _randn(6, seed=0)
    assert gradcheck(R.SwishSavedSigmoid.apply, (x,)) is True  # first order right
    assert torch.autograd.gradgradcheck(R.SwishSavedSigmoid.apply, (x,), raise_exception=False) is False
    with pytest.raises(TorchGradcheckError) as info:
        gradgradcheck(R.SwishSavedSigmoid.apply, (x,))
    text = str(info.value)
    assert text.startswith("verigrad.gradgradcheck: the backward of SwishSavedSigmoid.apply's backward is not") and "input 0 (" in text
    assert "suspect: SwishSavedSigmoid saves ctx.saved_tensors[1], computed in the forward" in text
    assert gradgradcheck(R.SwishSavedSigmoid.apply, (x,), raise_exception=False) is False


def test_gradgradcheck_of_a_fused_norm_that_saves_its_intermediates_names_them():
    """A fused layer norm saves x̂ and r from its forward: right first order, not double-differentiable."""
    inputs = (_randn(3, 5, seed=0), _randn(5, seed=1), _randn(5, seed=2))
    assert gradcheck(R.LayerNorm.apply, inputs) is True
    assert torch.autograd.gradgradcheck(R.LayerNorm.apply, inputs, raise_exception=False) is False
    with pytest.raises(TorchGradcheckError, match=r"suspect: LayerNorm saves ctx\.saved_tensors\[0, 2\]"):
        gradgradcheck(R.LayerNorm.apply, inputs)


def test_a_wrong_jvp_is_caught_and_a_right_one_passes():
    x = _randn(6, seed=0)
    assert gradcheck(R.Swish.apply, (x,), check_forward_ad=True) is True
    with pytest.raises(TorchGradcheckError, match=r"forward-mode derivative of SwishWrongJvp\.apply .* output 0 \("):
        gradcheck(R.SwishWrongJvp.apply, (x,), check_forward_ad=True)
    assert gradcheck(R.SwishWrongJvp.apply, (x,)) is True  # its backward is right


def test_gradgradcheck_of_a_once_differentiable_backward_fails_as_in_torch_and_says_why():
    r, theta = _randn(3, seed=0), _randn(3, seed=1)
    assert torch.autograd.gradgradcheck(R.PolarToCartesian.apply, (r, theta), raise_exception=False) is False
    with pytest.raises(TorchGradcheckError, match=r"∂f/∂input0 is 0 everywhere while the reference is not"):
        gradgradcheck(R.PolarToCartesian.apply, (r, theta))


def test_a_setup_context_style_function_is_checked_the_same():
    x = _randn(5, seed=0)
    assert gradcheck(R.Cube.apply, (x,)) is True
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(R.CubeTwoForThree.apply, (x,))
    text = str(info.value)
    assert "analytic = 0.666667 × reference" in text and f"slip: line {_line_of(R.CubeTwoForThree, 'return 2 * g * square')} `" in text


@pytest.mark.parametrize(
    "right, wrong, says",
    [(R.KernelExp, R.KernelExpDoubled, "factor 2"), (R.XCosKernel, R.XCosKernelSignSlip, "disagrees")],
    ids=["all_outside_torch", "part_outside_torch"],
)
def test_a_forward_torch_cannot_differentiate_leaves_its_backward_under_test_blamed_as_the_graph(right, wrong, says):
    """The forward leaves torch (as a compiled kernel does), wholly or in part: finite differences alone judge the backward."""
    x = _randn(5, seed=0)
    assert gradcheck(right.apply, (x,)) is True
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(wrong.apply, (x,))
    text = str(info.value)
    assert says in text and "blame: graph" in text and f"torch.autograd.Function {wrong.__name__}" in text


def test_two_functions_chained_are_judged_and_no_line_is_named_in_either():
    x = _randn(5, seed=0)
    chained = lambda x: R.CubeTwoForThree.apply(R.Swish.apply(x))
    assert gradcheck(lambda x: R.Cube.apply(R.Swish.apply(x)), (x,)) is True
    with pytest.raises(TorchGradcheckError, match=r"through CubeTwoForThree, Swish|through Swish, CubeTwoForThree") as info:
        gradcheck(chained, (x,))
    assert "no slip named" in str(info.value)


sparsemax_no_centring = R.SparsemaxNoCentring.apply  # a package's public name for its Function


def test_a_function_called_by_a_name_bound_before_is_still_caught_by_the_differences():
    z = _randn(3, 5, seed=0)
    with pytest.raises(TorchGradcheckError) as info:  # the bound method itself: its class is looked up, the line named
        gradcheck(sparsemax_no_centring, (z,))
    assert f"slip: line {_line_of(R.SparsemaxNoCentring, 'dz = s * (g - mean)')} `" in str(info.value)
    with pytest.raises(TorchGradcheckError) as info:  # inside a lambda the name cannot be reached: the differences decide
        gradcheck(lambda z: sparsemax_no_centring(z, -1), (z,))
    assert "blame: graph" in str(info.value) and "input 0 (6 of 15 entries)" in str(info.value)


def test_a_forward_written_in_place_is_still_a_witness_and_its_backwards_slip_is_named():
    """``e /= e.sum()`` in a Function's forward: torch's autograd refuses to differentiate those operations as written
    (exp saved its output); the inlined forward saves copies, so a wrong backward is blamed and its line named."""
    z = _randn(3, 5, seed=4)
    assert torch_gradcheck(R.SoftmaxNormalizedInPlace.apply, (z,)) is True
    assert gradcheck(R.SoftmaxNormalizedInPlace.apply, (z,)) is True
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(R.SoftmaxInPlaceNoCentring.apply, (z,))
    text = str(info.value)
    assert "blame: analytic" in text, text
    assert f"slip: line {_line_of(R.SoftmaxInPlaceNoCentring, 'return p * g')} `" in text, text


@pytest.mark.parametrize("budget", [0.0, 1.0, 2.5, 6.0])
def test_an_iterative_forward_with_an_exact_backward_passes_and_a_wrong_one_is_caught(budget):
    """A bisection's autograd differentiates its iterations: where every entry is capped (budget 0 or 6) it is a few
    ulps of the upstream gradient against the exact 0, which no difference can see, and the differences decide (with a
    warning); where entries are free, a backward that centres over the wrong entries is caught."""
    x = _randn(4, 6, seed=1)
    right = lambda x: R.CappedSimplexBisection.apply(x, budget)
    assert torch_gradcheck(right, (x,), eps=1e-6, atol=1e-5) is True
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert gradcheck(right, (x,), eps=1e-6, atol=1e-5) is True
    truncation = [w for w in seen if "an iterative forward's truncation" in str(w.message)]
    assert all(w.filename == __file__ for w in truncation)  # the caller's line, as torch's warnings point
    assert bool(truncation) == (budget in (0.0, 6.0)), [str(w.message) for w in seen]
    if 0.0 < budget < 6.0:
        wrong = lambda x: R.CappedSimplexBisectionMeanOfAll.apply(x, budget)
        assert torch_gradcheck(wrong, (x,), raise_exception=False) is False
        assert gradcheck(wrong, (x,), raise_exception=False) is False


def test_the_iteration_cap_is_not_a_tolerance_for_a_slip():
    """Only a disagreement within ITERATION_CAP of the gradient's scale is handed to the differences: at budget 0, where
    the right backward's residue is (test above), the planted mean over every entry, wrong by O(1) at the entries free
    by the bisection's last ulp, stays a failure."""
    x = _randn(4, 6, seed=1)
    free = R.CappedSimplexBisection.apply(x, 0.0)
    assert bool(((free > 0) & (free < 1)).any())
    assert gradcheck(lambda x: R.CappedSimplexBisectionMeanOfAll.apply(x, 0.0), (x,), raise_exception=False) is False


def test_two_gradients_of_equal_value_are_told_apart_by_their_place_in_the_backwards_tuple():
    """At x = y the backward's dx and dy are equal: the slip of ∂f/∂y is dy's line, not dx's."""
    x = _randn(2, 3, seed=5)
    y = x.detach().clone().requires_grad_(True)
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(R.MagnitudeSwapped.apply, (x, _randn(2, 3, seed=6), 0.1))
    assert f"slip: line {_line_of(R.MagnitudeSwapped, 'dy = drdx * g')} `" in str(info.value)
    assert gradcheck(R.Magnitude.apply, (x, y, 0.1)) is True


def test_a_statement_run_again_in_place_leaves_the_reference_quantities_as_they_were():
    """``dz -= p * s`` run again with the right gradient in dz's place must not write into that gradient: the slip is
    the in-place line that made the returned value wrong, not the line before it."""
    z = _randn(3, 5, seed=7)
    assert gradcheck(R.SoftmaxCentredInPlace.apply, (z,)) is True
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(R.SoftmaxCentredInPlaceDoubled.apply, (z,))
    assert f"slip: line {_line_of(R.SoftmaxCentredInPlaceDoubled, 'dz -= p * s')} `" in str(info.value), str(info.value)


def test_a_wrong_term_added_to_a_right_one_is_named_at_its_own_line():
    """``dx = dx + g`` adds the right residual term to a wrong one: the slip is the line of the wrong term (followed
    with the target less the rest of the sum), not the sum."""
    x, W = _randn(4, 3, seed=8), _randn(3, 3, seed=9)
    assert gradcheck(R.ResidualLinear.apply, (x, W)) is True
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(R.ResidualLinearUntransposed.apply, (x, W))
    text = str(info.value)
    assert f"slip: line {_line_of(R.ResidualLinearUntransposed, 'dx = g @ W')} `" in text, text
    assert "less the rest of line" in text
