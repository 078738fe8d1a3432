"""Forward mode: a hand-written J·v (``Derivation(jvp=...)``, a ``torch.autograd.Function``'s ``jvp`` staticmethod, and
``verigrad.gradcheck(check_forward_ad=True)``) judged against torch's forward-mode AD and the differences along v."""

import sys

import numpy as np
import pytest
import torch

from verigrad import Derivation, check, gradcheck, gradgradcheck
from verigrad.checks.report import FAIL, PASS, Kind, Quantity, Witness

from .second_order_objectives import logistic_forward, logistic_gradients

TorchGradcheckError = sys.modules["torch.autograd.gradcheck"].GradcheckError
SHAPES = {"X": ("N", "D"), "w": ("D",), "y": ("N",)}


def _jv(report):
    (g,) = [g for g in report.gradients if g.quantity == Quantity.JVP]
    return g


def logistic_jvp(v, X, w, y, k=1.0):
    g = logistic_gradients(X, w, y)
    return k * np.sum(g["w"] * v["w"]) + np.sum(g["X"] * v["X"])


def tanh_forward(xp, X, W, b):
    return xp.tanh(X @ W + b)


def tanh_gradients(X, W, b, grad_output):
    t = np.tanh(X @ W + b)
    dh = grad_output * (1 - t * t)
    return {"X": dh @ W.T, "W": X.T @ dh, "b": dh.sum(axis=0)}


def tanh_jvp(v, X, W, b, slip=False):
    t = np.tanh(X @ W + b)
    return (1 - (t if slip else t * t)) * (v["X"] @ W + X @ v["W"] + v["b"])


def _tanh_layer(name, **kw):
    jvp = (lambda v, X, W, b: tanh_jvp(v, X, W, b, **kw)) if kw else tanh_jvp
    return Derivation(
        name=name, shapes={"X": ("N", "D"), "W": ("D", "M"), "b": ("M",)}, output=("N", "M"), forward=tanh_forward, gradients=tanh_gradients, jvp=jvp
    )


@pytest.mark.parametrize("k", [1.0, 2.0], ids=["right", "factor_2"])
def test_a_scalar_objectives_jvp_against_forward_ad_and_differences(k):
    d = Derivation(
        name=f"lg_jvp_{k:g}",
        shapes=SHAPES,
        forward=logistic_forward,
        gradients=logistic_gradients,
        check=["w", "X"],
        jvp=lambda v, X, w, y: logistic_jvp(v, X, w, y, k),
    )
    g = _jv(check(d, examples=3, seed=4, database=False))
    assert g.title == "J·v" and g.witness == Witness.AUTOGRAD
    assert g.status == (PASS if k == 1.0 else FAIL)
    if k != 1.0:
        assert g.blame == "analytic"
        assert g.diagnosis.kind == Kind.SCALE and g.diagnosis.details == {"scale_factor": 2.0, "param": "w"}, g.diagnosis


def test_a_layers_jvp_is_judged_entry_by_entry():
    right = _jv(check(_tanh_layer("tanh_layer"), examples=3, seed=1, database=False))
    assert right.status == PASS and right.entries > 1
    wrong = _jv(check(_tanh_layer("tanh_layer_slip", slip=True), examples=3, seed=1, database=False))
    assert wrong.status == FAIL and wrong.mismatches > 0 and wrong.worst_index is not None


def _first_row_off(v, X, W, b):
    out = tanh_jvp(v, X, W, b)
    out[0] *= 1.5
    return out


@pytest.mark.parametrize(
    ("jvp", "kind", "said"),
    [
        (lambda v, X, W, b: tanh_jvp({**v, "b": 0 * v["b"]}, X, W, b), Kind.MISSING_TERM, "J·v leaves out the term of v_b"),
        (lambda v, X, W, b: -tanh_jvp(v, X, W, b), Kind.SIGN_FLIP, "J·v is -1 × the reference along every direction tried"),
        (_first_row_off, Kind.PARTIAL, "J·v is wrong on the same"),
    ],
    ids=["left_out_tangent", "sign", "one_row"],
)
def test_a_wrong_jvp_is_diagnosed_as_a_gradient_would_be(jvp, kind, said):
    d = Derivation(
        name="tanh_layer_jvp_diag",
        shapes={"X": ("N", "D"), "W": ("D", "M"), "b": ("M",)},
        output=("N", "M"),
        forward=tanh_forward,
        gradients=tanh_gradients,
        jvp=jvp,
        dims={"N": (2, 4)},
    )
    g = _jv(check(d, examples=3, seed=1, database=False))
    assert g.status == FAIL and g.diagnosis is not None and g.diagnosis.kind == kind and said in g.diagnosis.sentence, g.diagnosis


class Cube(torch.autograd.Function):
    """(x w)³ per row, with hand-written backward and jvp."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        ctx.save_for_forward(x, w)
        return (x @ w) ** 3

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        dh = 3 * (x @ w) ** 2 * g
        return dh[:, None] * w[None, :], x.T @ dh

    @staticmethod
    def jvp(ctx, tx, tw):
        x, w = ctx.saved_tensors
        return 3 * (x @ w) ** 2 * (tx @ w + x @ tw)


class CubeMissingTerm(Cube):
    """Its jvp forgets the tangent of w."""

    @staticmethod
    def jvp(ctx, tx, tw):
        x, w = ctx.saved_tensors
        return 3 * (x @ w) ** 2 * (tx @ w)


class CubeScalar(Cube):
    """Σ (x w)³, its jvp with a factor 2 on one term (the backward is Cube's: g is a scalar here)."""

    @staticmethod
    def forward(ctx, x, w):
        return Cube.forward(ctx, x, w).sum()

    @staticmethod
    def jvp(ctx, tx, tw):
        x, w = ctx.saved_tensors
        return (3 * (x @ w) ** 2 * (tx @ w + 2 * x @ tw)).sum()


def test_a_functions_jvp_staticmethod_is_the_derivations_jvp():
    d = Derivation(name="cube_fn", shapes={"x": ("N", "D"), "w": ("D",)}, forward=lambda xp, x, w: xp.sum((x @ w) ** 3), gradients=CubeScalar)
    assert d.jvp is not None
    report = check(d, examples=3, seed=0, database=False)
    assert all(g.status == PASS for g in report.gradients if g.quantity == Quantity.GRADIENT)
    assert _jv(report).status == FAIL


def _inputs(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(5, 3, generator=gen, dtype=dtype, requires_grad=True), torch.randn(3, generator=gen, dtype=dtype, requires_grad=True))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_gradcheck_check_forward_ad_passes_a_right_jvp_and_locates_a_wrong_one(dtype):
    assert gradcheck(Cube.apply, _inputs(dtype), check_forward_ad=True) is True
    with pytest.raises(TorchGradcheckError) as info:
        gradcheck(CubeMissingTerm.apply, _inputs(dtype), check_forward_ad=True)
    text = str(info.value)
    assert "forward-mode derivative of CubeMissingTerm.apply" in text and "output 0 (" in text and "worst entry output0[" in text
    assert "J·v leaves out the term of v_input1: the tangent of input1 is not propagated" in text
    assert gradcheck(CubeMissingTerm.apply, _inputs(dtype), check_forward_ad=True, raise_exception=False) is False
    assert gradcheck(CubeMissingTerm.apply, _inputs(dtype)) is True  # its backward is right: only forward mode is wrong


def test_gradgradcheck_forward_over_reverse():
    assert gradgradcheck(torch.tanh, (torch.randn(4, dtype=torch.float64, requires_grad=True),), check_fwd_over_rev=True) is True
