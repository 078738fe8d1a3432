"""The built-ins that show the reach of the contract (convolution, pooling, batch norm, an LSTM step, integer
labels, dropout): each passes, and a typical mistake in each fails, at the configuration it lives in."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from verigrad import analytic
from verigrad.analytic import FORWARD_SEED, configure, resolve
from verigrad.checks import check
from verigrad.checks.report import Blame, Status
from verigrad.checks.search import draw_point
from verigrad.checks.search.inputs import bound_for
from verigrad.checks.verdict import evaluate, evaluate_group
from verigrad.reference import autograd_gradients

REACH = ("conv2d", "max_pool", "batch_norm_train", "lstm_step", "softmax_cross_entropy_labels", "dropout")
#: Search budget per derivation: enough sizes and configurations to meet every grid value, quick under CI.
EXAMPLES, SEED = 15, 7


#: What each needs of the contract beyond shapes (a built-in is registered once its piece is there).
NEEDS = {
    "conv2d": "hyperparameters (hyper=) in dim expressions",
    "max_pool": "hyperparameters (hyper=) in dim expressions",
    "batch_norm_train": "nothing new",
    "lstm_step": "several outputs (output= a tuple of shapes)",
    "softmax_cross_entropy_labels": "data inputs (data=, integers)",
    "dropout": "hyper= and seed=True",
}


def builtin(name: str):
    """The registered built-in ``name``; the test is skipped, saying why, while it is not registered."""
    if name not in analytic.NAMES:
        pytest.skip(f"{name} is not registered: it needs {NEEDS[name]}")
    return analytic.builtin(name)


def wrong(name: str, gradients) -> analytic.Derivation:
    """The built-in ``name`` with ``gradients`` in place of its own (everything else as declared)."""
    return dataclasses.replace(builtin(name), name=f"{name}_wrong", gradients=gradients)


@pytest.mark.parametrize("name", REACH)
def test_reach_builtin_is_registered_with_its_docstring(name):
    d = builtin(name)
    assert d.name == name
    assert "∂f/∂" in d.doc, f"{name}: no derivation in its docstring"


@pytest.mark.parametrize("name", REACH)
def test_reach_builtin_passes_the_property_search(name):
    d = builtin(name)
    report = check(d, examples=EXAMPLES, seed=SEED, database=False)
    assert report.passed, report.message
    assert report.examples == EXAMPLES
    assert {g.param for g in report.gradients} == set(d.params)


# --- at every configuration of a grid: the formulas equal autograd, a stack of points the points alone ---

WITH_INPUTS = ("conv2d", "max_pool", "softmax_cross_entropy_labels", "dropout")
POINTS = 3


def configurations(d) -> list[dict]:
    """Every combination of one value per hyperparameter ([{}] without any)."""
    names = list(d.hyper)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(d.hyper[n] for n in names))]


def spec_at(d, hyper: dict, seed: int) -> dict:
    """An example's spec under ``hyper``: sizes drawn in the configured ranges until every dim is >= 1, data
    drawn at those sizes, and a forward seed for a seeded derivation."""
    c = configure(d, hyper)
    rng = np.random.default_rng(seed)
    while True:
        sizes = {s: int(rng.integers(c.dim_range(s)[0], c.dim_range(s)[1] + 1)) for s in c.symbols}
        if c.valid_sizes(sizes):
            break
    data = {n: spec.draw(resolve(spec.shape, sizes), sizes, rng) for n, spec in c.data.items() if spec.drawn}
    return {**sizes, **hyper, **data, **({FORWARD_SEED: seed} if d.seed else {})}


@pytest.mark.parametrize("name", WITH_INPUTS)
def test_at_every_configuration_formulas_equal_autograd_and_stacks_equal_single_points(name):
    d = builtin(name)
    assert d.has_inputs
    for k, hyper in enumerate(configurations(d)):
        points = [draw_point(d, spec_at(d, hyper, k), seed=10 * k + j) for j in range(POINTS)]
        bound = bound_for(d, points[0])
        for p in points:
            extra = {"grad_output": p.grad_output} if bound.is_layer else {}
            ours, torchs = bound.gradients(**p.params, **extra), autograd_gradients(bound, p.params, p.grad_output)
            for n in bound.check:
                scale = float(np.max(np.abs(torchs[n]), initial=0.0))
                np.testing.assert_allclose(ours[n], torchs[n], rtol=1e-12, atol=1e-12 * scale, err_msg=f"{hyper} ∂f/∂{n}")
        together, alone = list(evaluate_group(bound, points)), [evaluate(bound, p) for p in points]
        assert [r.status for r in together] == [r.status for r in alone] == [Status.PASS] * POINTS, hyper


# --- one typical mistake per built-in ------------------------------------------------------------


def _conv_scatter_ignores_stride(x, w, b, stride, pad, grad_output):
    """∂f/∂x scattered to consecutive rows and columns (k + i, l + j) instead of (s·i + k, s·j + l): right at stride 1 only."""
    from verigrad.analytic.conv2d import gradients

    g = gradients(x, w, b, stride, pad, grad_output)
    G, k, (h_out, w_out) = grad_output, w.shape[2], grad_output.shape[2:]
    xt = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * pad, x.shape[3] + 2 * pad))
    for i in range(k):
        for j in range(k):
            xt[:, :, i : i + h_out, j : j + w_out] += np.einsum("nfab,fc->ncab", G, w[:, :, i, j])
    return {**g, "x": xt[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]}


def _pool_assigns(x, size, stride, grad_output):
    """Each window's G assigned (=) rather than added (+=): a maximum shared by overlapping windows keeps only the last."""
    from verigrad.analytic.max_pool import forward, slabs

    y, dx = forward(np, x, size, stride), np.zeros_like(x)
    for at, s in slabs(x, size, stride):
        hit = s == y
        dx[at] = np.where(hit, grad_output, dx[at])
    return {"x": dx}


def _batch_norm_no_variance_path(X, gamma, beta, grad_output):
    from verigrad.analytic.batch_norm_train import gradients

    g = gradients(X, gamma, beta, grad_output)
    Xc = X - X.mean(axis=0)
    rho = 1.0 / np.sqrt((Xc * Xc).mean(axis=0) + analytic.batch_norm_train.EPS)
    Dh = grad_output * gamma
    return {**g, "X": rho * (Dh - Dh.mean(axis=0))}  # the variance treated as a constant


def _lstm_cell_skips_hidden_path(x, prev_h, prev_c, Wx, Wh, b, grad_output):
    """∂f/∂c₁ taken as G_c alone: the path from next_c through next_h = o ⊙ tanh(next_c) is dropped."""
    from verigrad.analytic.lstm_step import gates

    G_h, Gamma = grad_output
    i, f, o, g = gates(np, x @ Wx + prev_h @ Wh + b, prev_h.shape[1])
    t = np.tanh(f * prev_c + i * g)
    Delta = np.concatenate([Gamma * g * i * (1 - i), Gamma * prev_c * f * (1 - f), G_h * t * o * (1 - o), Gamma * i * (1 - g * g)], axis=1)
    return {"x": Delta @ Wx.T, "prev_h": Delta @ Wh.T, "prev_c": Gamma * f, "Wx": x.T @ Delta, "Wh": prev_h.T @ Delta, "b": Delta.sum(axis=0)}


def _labels_at_column_zero(Z, y):
    """1 subtracted in column 0 of every row instead of at the row's label: right only where y = 0."""
    n = Z.shape[0]
    S = np.exp(Z - Z.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    S[:, 0] -= 1.0
    return {"Z": S / n}


def _dropout_unscaled(X, p, seed, grad_output):
    """The keep mask without the 1/(1 − p) of inverted dropout."""
    return {"X": grad_output * (np.random.default_rng(seed).random(X.shape) >= p)}


def _counterexample(report, key: str) -> dict:
    """The failing gradient's own counterexample entry ``key`` (hyper, data, forward_seed)."""
    return report.failures[0].counterexample[key]


#: Where each mistake lives, read off the failing gradient's counterexample.
WHERE = {
    "conv2d": lambda r: _counterexample(r, "hyper")["stride"] == 2,
    "max_pool": lambda r: _counterexample(r, "hyper")["stride"] < _counterexample(r, "hyper")["size"],
    "batch_norm_train": lambda r: True,
    "lstm_step": lambda r: True,
    "softmax_cross_entropy_labels": lambda r: np.any(np.asarray(_counterexample(r, "data")["y"]) != 0),
    "dropout": lambda r: _counterexample(r, "forward_seed") is not None,
}

MISTAKES = {
    "conv2d": (_conv_scatter_ignores_stride, {"x"}),
    "max_pool": (_pool_assigns, {"x"}),
    "batch_norm_train": (_batch_norm_no_variance_path, {"X"}),
    "lstm_step": (_lstm_cell_skips_hidden_path, {"x", "prev_h", "prev_c", "Wx", "Wh", "b"}),
    "softmax_cross_entropy_labels": (_labels_at_column_zero, {"Z"}),
    "dropout": (_dropout_unscaled, {"X"}),
}


def test_every_reach_builtin_has_a_planted_mistake():
    assert set(MISTAKES) == set(REACH)


@pytest.mark.parametrize("name", REACH)
def test_planted_mistake_fails_and_names_the_parameter(name):
    change, params = MISTAKES[name]
    builtin(name)
    report = check(wrong(name, change), examples=EXAMPLES, seed=SEED, database=False)
    assert report.status == Status.FAIL
    assert {g.param for g in report.failures} == params
    assert all(g.blame == Blame.ANALYTIC for g in report.failures)
    assert WHERE[name](report), report.failures[0].counterexample


#: Grids without the configurations a mistake lives in: there the wrong gradient is right.
WHERE_RIGHT = {"conv2d": {"stride": [1], "pad": [0, 1]}, "max_pool": {"size": [2, 3], "stride": [3]}}


@pytest.mark.parametrize("name", sorted(WHERE_RIGHT))
def test_planted_mistake_passes_on_a_grid_without_its_configuration(name):
    change, _ = MISTAKES[name]
    d = dataclasses.replace(wrong(name, change), hyper=WHERE_RIGHT[name])
    report = check(d, examples=EXAMPLES, seed=SEED, database=False)
    assert report.passed, report.message


def test_max_pool_tie_is_nondifferentiable_not_a_failure():
    # Two equal maxima in the window at rows 1, columns 1–2: the forward's derivative there does not exist
    # (one-sided slopes G and 0); the declared kinks make those two entries nondifferentiable.
    x = np.random.default_rng(0).standard_normal((1, 1, 3, 3))
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = 5.0
    report = check(builtin("max_pool"), at={"x": x, "size": 2, "stride": 1})
    assert report.passed, report.message
    assert sorted(map(tuple, report.gradients[0].nondifferentiable)) == [(0, 0, 1, 1), (0, 0, 1, 2)]
