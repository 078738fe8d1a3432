"""verigrad.gradcheck / gradgradcheck: torch's signatures, this harness's verdict (a test switches by its import)."""

import sys
import warnings

import pytest
import torch

from verigrad import gradcheck, gradgradcheck

TorchGradcheckError = sys.modules["torch.autograd.gradcheck"].GradcheckError


class Square(torch.autograd.Function):
    """(x w)², with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return (x @ w) ** 2

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        dh = 2 * (x @ w) * g
        return dh @ w.T, x.T @ dh


class OneEntryOff(Square):
    """∂/∂w wrong by 1% at one entry."""

    @staticmethod
    def backward(ctx, g):
        dx, dw = Square.backward(ctx, g)
        dw = dw.clone()
        dw[0, 0] *= 1.01
        return dx, dw


class FirstOrderOnly(Square):
    """Right values, but h taken out of the graph: its own backward misses the second-order term."""

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        dh = 2 * (x @ w).detach() * g
        return dh @ w.T, x.T @ dh


def _inputs(seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(3, 4, generator=gen, dtype=dtype, requires_grad=True), torch.randn(4, 2, generator=gen, dtype=dtype, requires_grad=True))


def test_a_right_backward_passes():
    assert gradcheck(Square.apply, _inputs()) is True


def test_a_wrong_entry_raises_torchs_error_type_with_the_entry_and_the_function_named():
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(OneEntryOff.apply, _inputs())
    text = str(info.value)
    assert "backward of OneEntryOff.apply" in text and "input 1 (1 of 8 entries)" in text
    assert "worst entry input1[0, 0]" in text and "slip: line 36 `dw[0, 0] *= 1.01`" in text and "blame: analytic" in text
    assert gradcheck(OneEntryOff.apply, _inputs(), raise_exception=False) is False


def test_a_callers_tolerance_can_only_loosen_and_says_so():
    with pytest.warns(UserWarning, match="accept it"):
        assert gradcheck(OneEntryOff.apply, _inputs(), rtol=0.05) is True
    assert gradcheck(OneEntryOff.apply, _inputs(), rtol=1e-4, raise_exception=False) is False


def test_a_relu_at_an_exact_tie_is_a_kink_not_a_mismatch():
    x = torch.tensor([0.0, 1.5, -2.0, 0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(torch.relu, (x,), raise_exception=False) is False  # 0.5 against 0 at the tie
    assert gradcheck(torch.relu, (x,)) is True


def test_outputs_that_are_not_differentiable_are_left_out():
    def with_index(x):
        return x.exp(), torch.argmax(x)

    assert gradcheck(with_index, (torch.randn(5, dtype=torch.float64, requires_grad=True),)) is True


def test_complex_inputs_are_refused_in_one_line():
    z = torch.randn(3, dtype=torch.complex128, requires_grad=True)
    with pytest.raises(ValueError, match=r"input 0 has dtype torch\.complex128"):
        gradcheck(torch.sin, (z,))


def test_checks_without_a_counterpart_are_named_in_a_warning():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert gradcheck(Square.apply, _inputs(), check_batched_grad=True, fast_mode=True) is True
    assert any("check_batched_grad, fast_mode" in str(w.message) for w in seen)


def test_forward_ad_asked_of_a_function_without_jvp_is_one_line_as_in_torch():
    with pytest.raises(TorchGradcheckError, match=r"forward-mode AD cannot run through Square\.apply: You must implement the jvp"):
        gradcheck(Square.apply, _inputs(), check_forward_ad=True)
    assert gradcheck(Square.apply, _inputs(), check_forward_ad=True, raise_exception=False) is False


def test_gradgradcheck_passes_a_differentiable_backward_and_catches_a_missing_second_order_term():
    assert gradgradcheck(Square.apply, _inputs()) is True
    assert torch.autograd.gradgradcheck(FirstOrderOnly.apply, _inputs(), raise_exception=False) is False
    assert gradgradcheck(FirstOrderOnly.apply, _inputs(), raise_exception=False) is False


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_is_checked_in_its_own_precision(seed):
    """No float64 required: right float32 functions pass (torch's defaults fail them), a 1% entry is still caught."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    x, w = torch.randn(2, 3, 6, 6, generator=gen), torch.randn(4, 3, 3, 3, generator=gen)
    conv = lambda x, w: F.conv2d(x, w, padding=1)
    assert gradcheck(conv, (x.requires_grad_(True), w.requires_grad_(True))) is True
    assert torch.autograd.gradcheck(conv, (x, w), raise_exception=False) is False
    assert gradcheck(Square.apply, _inputs(seed, dtype=torch.float32)) is True
    with pytest.raises(TorchGradcheckError, match="precision coarser than float64"):
        gradcheck(OneEntryOff.apply, _inputs(seed, dtype=torch.float32))


class Atomic(Square):
    """Square's backward with the run-to-run wobble of an atomic-add reduction: relative 1e-12, different every call
    (a counter, not a generator the check seeds); ``factor`` plants a wrong factor under it."""

    calls = 0
    factor = 1.0
    size = 1e-12

    @classmethod
    def backward(cls, ctx, g):
        dx, dw = Square.backward(ctx, g)
        Atomic.calls += 1
        wobble = 1 + cls.size * (Atomic.calls % 3)
        return cls.factor * dx * wobble, dw * wobble


class AtomicTwice(Atomic):
    factor = 2.0


class AtomicCoarse(Atomic):
    """A wobble of 1e-5: beyond the error model's rounding, within the caller's nondet_tol."""

    size = 1e-5


def test_a_nondeterministic_backward_is_reported_and_accepted_within_nondet_tol_only():
    with pytest.raises(TorchGradcheckError, match=r"Atomic\.apply is not deterministic: .* differing by up to [0-9.e-]+ \(nondet_tol=0\)"):
        gradcheck(Atomic.apply, _inputs())
    assert gradcheck(Atomic.apply, _inputs(), nondet_tol=1e-20, raise_exception=False) is False
    with pytest.warns(UserWarning, match=r"nondeterministic: two calls at the same point differ by up to .*, within nondet_tol=1e-09"):
        assert gradcheck(Atomic.apply, _inputs(), nondet_tol=1e-9) is True
    with pytest.warns(UserWarning, match=r"within nondet_tol=0\.001; .* the error model rejects it by no more than nondet_tol: accepted"):
        assert gradcheck(AtomicCoarse.apply, _inputs(), nondet_tol=1e-3) is True
    assert gradcheck(AtomicCoarse.apply, _inputs(), nondet_tol=1e-6, raise_exception=False) is False
    with pytest.raises(TorchGradcheckError, match=r"input 0 \(12 of 12 entries\)(.|\n)*factor 2"):  # a wrong backward stays wrong
        gradcheck(AtomicTwice.apply, _inputs(), nondet_tol=1e-9)


class Lazy(torch.autograd.Function):
    """x², its backward written for a defined upstream gradient only (materialization turned off)."""

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class Fills(Lazy):
    """Handles the undefined gradient, but as ones instead of zeros."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.ones_like(x) if g is None else 2 * x * g


class Pair(torch.autograd.Function):
    """(x², x³), its backward assuming both upstream gradients defined."""

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x)
        return x * x, x**3

    @staticmethod
    def backward(ctx, g2, g3):
        (x,) = ctx.saved_tensors
        return 2 * x * g2 + 3 * x * x * g3


@pytest.mark.parametrize(
    ("fn", "said"),
    [
        (Lazy, r"backward of Lazy\.apply raised with the upstream gradient of every output undefined .*: TypeError: unsupported operand"),
        (Fills, r"backward of Fills\.apply gives a nonzero gradient for input 0 with the upstream gradient of every output undefined"),
        (Pair, r"backward of Pair\.apply raised with the upstream gradient of (every output|output [01]) undefined"),
    ],
    ids=["raises_on_none", "nonzero_for_none", "several_outputs"],
)
def test_a_backward_that_cannot_take_an_undefined_upstream_gradient_is_one_line(fn, said):
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    with pytest.raises((TorchGradcheckError, TypeError)):  # torch's own check lets the backward's TypeError through
        torch.autograd.gradcheck(fn.apply, (x,))
    with pytest.raises(TorchGradcheckError, match=said) as info:
        gradcheck(fn.apply, (x,))
    assert "\n" not in str(info.value)
    assert gradcheck(fn.apply, (x,), check_undefined_grad=False) is True
    assert gradcheck(Square.apply, _inputs()) is True  # materialized zeros: the default Function passes
