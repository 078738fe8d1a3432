"""Projection mode: entry-level analytic vs autograd, directional finite differences, group testing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import verigrad.analytic.two_layer_relu as relu
from verigrad.analytic import builtin
from verigrad.checks.report import Blame
from verigrad.checks.search import draw_point
from verigrad.checks.verdict import CROSSOVER_ENTRIES, DEFAULT_BUDGET, choose_mode, evaluate_projection
from verigrad.checks.verdict.thresholds import K_FD, U64, exact_bound
from verigrad.reference import BatchedObjective, DirectionalFD, Support, autograd_gradients, forward_noise, random_direction

ANALYTIC, AUTOGRAD, GRAPH = Blame.ANALYTIC, Blame.AUTOGRAD, Blame.GRAPH

#: Moderately large: 8,000 entries in W1, 9,080 checked entries in all.
SIZES = {"N": 16, "D_in": 200, "H": 40, "D_out": 5}
#: Planted errors are this fraction of max|∂f/∂W1|: far below any finite-difference resolution, far
#: above τ_ex (≈ 4 u √L max|g| ≈ 1e-10 max|g| here), so only the entry-level comparison sees it.
TINY = 1e-6
#: Entries the planted mistakes sit at (ids in test names read as W1[row, col]).
PLANTED = (7, 3)
DETACHED = (11, 5)

RELU = builtin("two_layer_relu")


def _point(seed: int = 0):
    return draw_point(RELU, SIZES, seed)


def _grad(report, param: str):
    return next(g for g in report.gradients if g.param == param)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correct_gradients_pass_within_the_budget(seed):
    rep = evaluate_projection(RELU, _point(seed), seed=seed)
    assert rep.passed, rep.message
    assert rep.mode == "projection"
    assert 0 < rep.evaluations <= DEFAULT_BUDGET
    assert all(g.blame is None and not g.warnings for g in rep.gradients), [g.warnings for g in rep.gradients]
    assert all(g.threshold["directional_max"] > 0 for g in rep.gradients)


def _planted_analytic(delta: float):
    def gradients(X, W1, W2, Y):
        g = relu.gradients(X, W1, W2, Y)
        g["W1"] = g["W1"].copy()
        g["W1"][PLANTED] += delta
        return g

    return gradients


def test_a_single_entry_wrong_by_1e6_of_max_is_caught_and_named():
    point = _point()
    delta = TINY * float(np.max(np.abs(relu.gradients(**point.params)["W1"])))
    wrong = dataclasses.replace(RELU, name="relu_one_entry", gradients=_planted_analytic(delta))
    rep = evaluate_projection(wrong, point)
    assert not rep.passed
    g = _grad(rep, "W1")
    assert (g.status, g.blame, g.mismatches, g.worst_index) == ("fail", ANALYTIC, 1, PLANTED)
    assert g.analytic_value - g.reference_value == pytest.approx(delta, rel=1e-6)
    assert all(_grad(rep, p).status == "pass" for p in ("X", "W2", "Y"))
    assert rep.evaluations <= DEFAULT_BUDGET


def test_a_wholly_wrong_gradient_is_blamed_on_the_derivation():
    def gradients(X, W1, W2, Y):
        g = relu.gradients(X, W1, W2, Y)
        g["W2"] = -g["W2"]
        return g

    rep = evaluate_projection(dataclasses.replace(RELU, name="relu_sign", gradients=gradients), _point())
    g = _grad(rep, "W2")
    assert (g.status, g.blame, g.mismatches) == ("fail", ANALYTIC, g.entries)
    assert rep.evaluations <= DEFAULT_BUDGET


def _detached_forward(xp, X, W1, W2, Y):
    """The same objective; under torch, entry DETACHED of W1 is cut from the graph (a stray detach).

    Its value is bit-for-bit the objective's (W1 − m·W1 + m·W1 is W1 exactly for m ∈ {0, 1}); only
    autograd's derivative at that entry is wrong (0), which is what the finite differences must find.
    """
    if isinstance(W1, torch.Tensor):
        mask = torch.zeros_like(W1)
        mask[DETACHED] = 1.0
        W1 = W1 - mask * W1 + mask * W1.detach()
    return relu.forward(xp, X, W1, W2, Y)


def _gradients_without_detached_entry(X, W1, W2, Y):
    """A derivation sharing the graph's mistake: analytic and autograd agree; only FD can tell."""
    g = relu.gradients(X, W1, W2, Y)
    g["W1"] = g["W1"].copy()
    g["W1"][DETACHED] = 0.0
    return g


def test_group_testing_localizes_and_fails_a_disagreement_that_analytic_and_autograd_share():
    shared = dataclasses.replace(RELU, name="relu_detached", forward=_detached_forward, gradients=_gradients_without_detached_entry)
    point = _point()
    rep = evaluate_projection(shared, point)
    g = _grad(rep, "W1")
    # Analytic and autograd agree, the function does not: the derivation fails, judged against the function.
    assert (rep.status, g.status, g.blame, g.worst_index, g.mismatches) == ("fail", "fail", GRAPH, DETACHED, 1)
    assert any("directional finite differences disagree with autograd at W1(11, 5)" in w for w in g.warnings), g.warnings
    assert g.reference[DETACHED] != 0.0 and g.analytic[DETACHED] == 0.0  # the reference there is the function's
    assert rep.evaluations <= DEFAULT_BUDGET
    assert all(_grad(rep, p).blame is None for p in ("X", "W2", "Y"))


def test_a_wrong_graph_under_a_right_derivation_is_blamed_on_autograd():
    graph_only = dataclasses.replace(RELU, name="relu_detached_graph", forward=_detached_forward)
    rep = evaluate_projection(graph_only, _point())
    g = _grad(rep, "W1")
    assert (g.blame, g.worst_index) == (AUTOGRAD, DETACHED)
    assert rep.evaluations <= DEFAULT_BUDGET


@pytest.mark.parametrize("entries", [1, 2, 3])
def test_bisection_finds_every_planted_entry_and_nothing_else(entries):
    point = _point()
    ev = BatchedObjective(RELU, point.params)
    noise = forward_noise(ev, np.random.default_rng(0))
    auto = autograd_gradients(RELU, point.params)
    claim = {"W1": auto["W1"].copy()}
    rng = np.random.default_rng(entries)
    planted = sorted(int(k) for k in rng.choice(claim["W1"].size, size=entries, replace=False))
    scale = float(np.max(np.abs(auto["W1"])))
    claim["W1"].reshape(-1)[planted] += 0.1 * scale
    tau = {"W1": exact_bound(0.0, U64, sum(point.sizes.values()), scale)}  # autograd's rounding, as τ_ex
    dfd = DirectionalFD(ev, Support(point.params, ["W1"]), noise, claim, tau, K_FD)
    live = np.arange(claim["W1"].size)
    found: set[int] = set()
    for _ in range(4):  # a random direction may weigh a planted entry too little; a few cover them all
        z = random_direction(live.size, rng)
        m = dfd.measure(live, z)
        if m.disagrees:
            loc = dfd.localize(live, z, m, budget=400)
            found |= {k for _, k in loc.found}
    assert found == set(planted)


def test_directions_agree_with_the_exact_gradient():
    point = _point(3)
    ev = BatchedObjective(RELU, point.params)
    noise = forward_noise(ev, np.random.default_rng(0))
    auto = autograd_gradients(RELU, point.params)
    names = list(RELU.check)
    total_dims = sum(point.sizes.values())
    tau = {n: exact_bound(0.0, U64, total_dims, float(np.max(np.abs(auto[n])))) for n in names}
    dfd = DirectionalFD(ev, Support(point.params, names), noise, auto, tau, K_FD)
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = dfd.measure(np.arange(dfd.support.size), random_direction(dfd.support.size, rng))
        assert not m.disagrees, (m.mismatch, m.bound)
        assert m.derivative == pytest.approx(m.claimed, rel=1e-6)


def test_choose_mode_by_size():
    small = draw_point(RELU, {"N": 2, "D_in": 3, "H": 4, "D_out": 2}, 0)
    assert choose_mode(RELU, small) == "exhaustive"
    assert choose_mode(RELU, _point()) == "projection"
    assert choose_mode(RELU, _point(), crossover=10**6) == "exhaustive"
    assert choose_mode(RELU, small, crossover=1) == "projection"
    assert CROSSOVER_ENTRIES > 0
