"""A derivation may give its hand-written gradients as a torch.autograd.Function (a custom backward)."""

import numpy as np
import torch

from verigrad.analytic import Derivation
from verigrad.checks import check
from verigrad.checks.report import Status


def forward(xp, X, W, b):
    return X @ W + b


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, W, b):
        ctx.save_for_backward(X, W)
        return X @ W + b

    @staticmethod
    def backward(ctx, G):
        X, W = ctx.saved_tensors
        return G @ W.T, X.T @ G, G.sum(0)


class LinearForgetsBatchSum(Linear):
    @staticmethod
    def backward(ctx, G):
        X, W = ctx.saved_tensors
        return G @ W.T, X.T @ G, G[0]  # the bias gradient of the first sample only


SHAPES = {"X": ("N", "D_in"), "W": ("D_in", "D_out"), "b": ("D_out",)}


def test_a_right_custom_backward_passes_like_any_derivation():
    d = Derivation(name="linear_fn", shapes=SHAPES, forward=forward, gradients=Linear, output=("N", "D_out"))
    assert d.torch_function is Linear
    report = check(d, examples=15, seed=4, database=False)
    assert report.passed, report.message


def test_a_wrong_custom_backward_fails_on_the_bias():
    d = Derivation(name="linear_fn_wrong", shapes=SHAPES, forward=forward, gradients=LinearForgetsBatchSum, output=("N", "D_out"))
    report = check(d, examples=15, seed=4, database=False)
    assert report.status == Status.FAIL
    assert [g.param for g in report.failures] == ["b"]
    assert report.shapes["N"] >= 2  # one sample hides the missing sum


def test_scalar_custom_backward():
    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x**2).sum()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    d = Derivation(name="square_fn", shapes={"x": ("N",)}, forward=lambda xp, x: xp.sum(x**2), gradients=Square)
    at = {"x": np.array([1.0, -2.0, 3.0])}
    report = check(d, at=at)
    assert report.passed
    np.testing.assert_allclose(d.gradients(x=at["x"])["x"], 2 * at["x"])
