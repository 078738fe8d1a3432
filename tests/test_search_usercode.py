"""The search's catches take the user's failures only: a derivation that raises gets one line, a harness bug surfaces."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.helpers import altered
from verigrad import analytic
from verigrad.checks import check
from verigrad.checks.search import search
from verigrad.checks.search.usercode import raised_in_user_code

BASE = analytic.builtin("relu_regression")
AT = {"X": np.ones((2, 3)) * 0.5, "W": np.full((3, 2), 0.25), "Y": np.zeros((2, 2))}


def no_derivative(xp, X, W, Y):
    h = X @ W
    if isinstance(h, torch.Tensor):
        h = h + 0 * torch.special.zeta(2.5 + 0 * h, torch.ones_like(h))  # torch has no derivative for zeta's first argument
    return xp.sum((h * (h > 0) - Y) ** 2)


def kinks_raise(xp, X, W, Y):
    raise KeyError("no switches")


def test_torch_unable_to_differentiate_the_forward_is_one_line():
    d = dataclasses.replace(BASE, name="zeta", forward=no_derivative)
    for report in (check(d, at=AT), check(d, examples=2, seed=1, database=False)):
        assert report.status == "error"
        assert report.message.startswith("checking raised NotImplementedError: the derivative for 'zeta' is not implemented")


def test_kinks_raising_at_a_given_point_is_one_line():
    d = dataclasses.replace(BASE, name="kinks_raise", kinks=kinks_raise)
    assert check(d, at=AT).message == "checking raised KeyError: 'no switches'"
    assert check(d, examples=2, seed=1, database=False).message == "kinks raised KeyError: 'no switches'"


def test_a_harness_bug_in_the_verdict_surfaces(monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("harness")

    monkeypatch.setattr(search, "evaluate", broken)
    with pytest.raises(ZeroDivisionError):
        check(BASE, at=AT)


def test_a_harness_bug_in_the_diagnosis_surfaces(monkeypatch):
    def broken(*args, **kwargs):
        raise IndexError("harness")

    monkeypatch.setattr(search, "diagnose", broken)
    wrong = altered(BASE, "relu_sign", lambda g, p: {**g, "W": -g["W"]})
    with pytest.raises(IndexError):
        check(wrong, examples=5, seed=1, database=False)


def test_an_exception_is_the_users_when_it_passes_through_the_derivation():
    def forward(xp, X, W, Y):
        return helper(X)

    def helper(X):
        raise ValueError("deep in the user's helper")

    d = dataclasses.replace(BASE, forward=forward)
    try:
        d.forward(np, **AT)
    except ValueError as e:
        assert raised_in_user_code(d, e)
    try:
        {}["harness"]
    except KeyError as e:
        assert not raised_in_user_code(d, e)
