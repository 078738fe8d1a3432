"""A recurrent layer wrong in one gradient at short lengths and in two others only at long ones shows all three
failing, each at its own length: backprop through time truncated after 1 step for ∂f/∂X (wrong from T = 2) and
after 6 steps for ∂f/∂U and ∂f/∂W (wrong from T = 7; ∂f/∂W from T = 8, the top of the range, as its first
step has no W term)."""

import numpy as np
import pytest

from verigrad import Derivation
from verigrad.checks import check
from verigrad.checks.report import FAIL, PASS

#: Steps of backprop through time kept, per gradient: ∂f/∂X keeps one, ∂f/∂U and ∂f/∂W six.
KEPT = {"X": 1, "U": 6, "W": 6}


def forward(xp, X, U, W):
    h = xp.tanh(X[0] @ U)
    hs = [h]
    for t in range(1, X.shape[0]):
        h = xp.tanh(X[t] @ U + h @ W)
        hs.append(h)
    return xp.stack(hs)


def states(X, U, W):
    hs = [np.tanh(X[0] @ U)]
    for t in range(1, X.shape[0]):
        hs.append(np.tanh(X[t] @ U + hs[-1] @ W))
    return hs


def truncated_bptt(X, U, W, grad_output, kept):
    """The gradients of Σ G ⊙ h with the loss at step t sent back through at most ``kept`` steps."""
    hs = states(X, U, W)
    dX, dU, dW = np.zeros_like(X), np.zeros_like(U), np.zeros_like(W)
    for t in range(X.shape[0]):
        dh = grad_output[t]
        for s in range(t, max(-1, t - kept), -1):
            da = dh * (1 - hs[s] ** 2)
            dX[s] += da @ U.T
            dU += X[s].T @ da
            if s > 0:
                dW += hs[s - 1].T @ da
            dh = da @ W.T
    return {"X": dX, "U": dU, "W": dW}


def gradients(X, U, W, grad_output, kept=KEPT):
    return {name: truncated_bptt(X, U, W, grad_output, k)[name] for name, k in kept.items()}


def rnn(name, kept):
    return Derivation(
        name=name,
        shapes={"X": ("T", "N", "D"), "U": ("D", "H"), "W": ("H", "H")},
        output=("T", "N", "H"),
        forward=forward,
        gradients=lambda X, U, W, grad_output: gradients(X, U, W, grad_output, kept),
        dims={"T": (1, 8)},
    )


@pytest.fixture(scope="module", params=[0, 2, 5], ids=lambda s: f"seed{s}")
def report(request):
    return check(rnn("rnn_truncated", KEPT), examples=30, seed=request.param, database=False)


def length(g):
    return g.counterexample["shapes"]["T"]


def test_every_wrong_gradient_fails(report):
    assert report.status == FAIL
    assert {g.param: g.status for g in report.gradients} == {"X": FAIL, "U": FAIL, "W": FAIL}


def test_each_fails_at_its_own_length(report):
    by = {g.param: g for g in report.gradients}
    assert length(by["X"]) == 2
    assert length(by["U"]) >= 7
    assert length(by["W"]) == 8


def test_each_gradient_points_at_its_own_line(report):
    lines = {g.param: g.slip.source for g in report.gradients if g.slip is not None}
    assert "dX[s]" in lines["X"] and "dU" in lines["U"] and "dW" in lines["W"]


def test_full_backprop_through_time_passes():
    full = rnn("rnn_full", {"X": 8, "U": 8, "W": 8})
    assert check(full, examples=30, seed=0, database=False).status == PASS
