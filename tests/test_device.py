"""The same checks with the reference on a device: ``check(..., device=...)`` (autograd there), and ``gradcheck`` /
``gradgradcheck`` / ``check_forward_ad`` of Functions whose inputs live there. Each test runs on the CPU and, where
``torch.cuda.is_available()``, on "cuda" with the same assertions (skipped on a machine without a GPU)."""

import sys
from functools import partial

import pytest
import torch

from verigrad import check, gradcheck, gradgradcheck
from verigrad.analytic import builtin
from verigrad.checks.report import FAIL, PASS, Kind, Quantity

from . import real_functions as R
from .second_order_objectives import logistic, logistic_hvp

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"))]
TorchGradcheckError = sys.modules["torch.autograd.gradcheck"].GradcheckError


def _randn(*shape, seed, device, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype).to(device).requires_grad_(True)


@pytest.mark.parametrize("device", DEVICES)
def test_a_search_with_autograd_on_the_device_passes_a_right_derivation(device):
    report = check(builtin("two_layer_sigmoid"), examples=3, seed=0, database=False, device=device)
    assert report.status == PASS, report.message


@pytest.mark.parametrize("device", DEVICES)
def test_a_hand_derived_hvp_is_judged_against_autograd_on_the_device(device):
    assert check(logistic(), examples=3, seed=3, database=False, device=device).status == PASS
    report = check(logistic("factor_two", partial(logistic_hvp, factor=2.0)), examples=3, seed=5, database=False, device=device)
    wrong = {g.param: g for g in report.gradients if g.quantity == Quantity.HVP and g.status == FAIL}
    assert set(wrong) == {"w"} and wrong["w"].diagnosis.kind == Kind.SCALE


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_of_a_function_on_the_device_passes_and_names_a_planted_slip(device):
    z = _randn(3, 5, seed=0, device=device)
    assert gradcheck(R.Sparsemax.apply, (z,)) is True
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(R.SparsemaxNoCentring.apply, (z,))
    assert "blame: analytic" in str(info.value) and "slip: line" in str(info.value)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_on_the_device_in_its_own_precision(device):
    x = _randn(2, 5, seed=1, device=device, dtype=torch.float32)
    assert gradcheck(R.GeluTanh.apply, (x,)) is True
    assert gradcheck(R.GeluTanhHalfSlope.apply, (x,), raise_exception=False) is False


@pytest.mark.parametrize("device", DEVICES)
def test_second_order_and_forward_mode_on_the_device(device):
    x = _randn(6, seed=2, device=device)
    assert gradgradcheck(R.Swish.apply, (x,)) is True
    assert gradcheck(R.Swish.apply, (x,), check_forward_ad=True) is True
    assert gradcheck(R.SwishWrongJvp.apply, (x,), check_forward_ad=True, raise_exception=False) is False
