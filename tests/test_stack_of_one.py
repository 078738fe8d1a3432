"""A single point is a stack of one (checks/verdict/point.py::stack_of_one); the one-at-a-time references only
where a stack cannot serve it. Small stacked calls run on one intra-op thread (reference/_threads.py)."""

import numpy as np
import pytest
import torch

from verigrad import analytic, check
from verigrad.checks.report import NOISE_NOT_NEEDED
from verigrad.checks.search import draw_point
from verigrad.checks.verdict import point as single
from verigrad.checks.verdict.calls import call_gradients
from verigrad.checks.verdict.noise import stacked_analytic_noise, with_analytic_noise
from verigrad.reference import Stack

CORE = ["two_layer_relu", "two_layer_sigmoid", "softmax", "layer_norm"]


def a_point(d, seed=3):
    rng = np.random.default_rng(seed)
    sizes = {s: int(rng.integers(d.dim_range(s)[0], d.dim_range(s)[1] + 1)) for s in d.symbols}
    return draw_point(d, sizes, seed)


@pytest.mark.parametrize("name", CORE)
def test_a_point_is_checked_as_a_stack_of_one(name):
    d = analytic.builtin(name)
    p = a_point(d)
    checked = single.check_point(d, p, mode="exhaustive")
    rep = single.stack_of_one(d, p, checked, 0, None)
    assert rep is not None and rep.passed
    assert single.evaluate(d, p).status == rep.status == "pass"


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")  # the forward's float() under autograd
def test_a_forward_that_does_not_vmap_is_checked_alone_with_the_same_verdict():
    d = analytic.builtin("softmax")

    def forward(xp, Z):
        return d.forward(xp, Z) if float(xp.sum(Z)) < 1e300 else None

    no_vmap = analytic.Derivation(name="softmax_no_vmap", shapes=d.shapes, forward=forward, gradients=d.gradients, output=d.output)
    p = a_point(no_vmap)
    assert single.stack_of_one(no_vmap, p, single.check_point(no_vmap, p, mode="exhaustive"), 0, None) is None
    alone, stacked = single.evaluate(no_vmap, p), single.evaluate(d, p)
    assert alone.status == stacked.status == "pass"
    assert alone.evaluations == stacked.evaluations
    assert [g.param for g in alone.gradients] == [g.param for g in stacked.gradients]


@pytest.mark.parametrize("name", CORE)
def test_noise_is_measured_only_where_a_verdict_needs_it(name):
    """A point where every entry passes with σ = 0 is reported with the threshold applied and σ "not needed"; the
    same point with σ measured passes with the looser threshold and the same figures, and ``remeasure`` gives it."""
    d = analytic.builtin(name)
    p = a_point(d)
    lazy, measured = single.evaluate(d, p), single.evaluate(d, p, noise=True)
    assert lazy.status == measured.status == "pass"
    for g, m in zip(lazy.gradients, measured.gradients, strict=True):
        assert g.sigma == NOISE_NOT_NEEDED and m.sigma is None and m.remeasure is None
        assert lazy.to_dict()["gradients"][lazy.gradients.index(g)]["sigma"] == "not needed"
        assert g.threshold["analytic_vs_autograd"] <= m.threshold["analytic_vs_autograd"]
        assert (g.max_abs_err, g.worst_index, g.analytic_value, g.reference_value) == (
            m.max_abs_err,
            m.worst_index,
            m.analytic_value,
            m.reference_value,
        )
        again = g.remeasure()
        assert again.threshold == m.threshold and again.sigma is None


def test_a_point_that_needs_noise_measures_it():
    """Saturated sigmoid units: σ_a of s ⊙ (1 − s) is what lets the correct gradient pass (docs/tolerances.md §4)."""
    d = analytic.builtin("two_layer_sigmoid")
    p = a_point(d)
    hot = {**p.params, "W1": p.params["W1"] * 60.0}
    rep = check(d, at=hot)
    assert rep.passed
    assert any(g.sigma is None for g in rep.gradients)  # some gradient needed σ: it was measured for all of them


@pytest.mark.parametrize("name", CORE)
def test_stacked_analytic_noise_is_the_per_point_one_bit_for_bit(name):
    d = analytic.builtin(name)
    pts = [a_point(d, 7)] + [draw_point(d, a_point(d, 7).sizes, 70 + j) for j in range(3)]
    stack = Stack(d, [p.params for p in pts], [p.grad_output for p in pts] if d.is_layer else None)
    stack.autograd(np.random.default_rng(0), jitters=2, relative=2.0**-28)
    auto, sigma = stack.noise()
    grads = [call_gradients(d, p)[0] for p in pts]
    grads[1] = {k: v.astype(np.float32) for k, v in grads[1].items()}  # another precision at one point
    grads[2] = None  # nothing to measure at another
    expect = {k: v.copy() for k, v in sigma.items()}
    for i, g in enumerate(grads):
        if g is not None:
            own = with_analytic_noise(d, {k: s[i] for k, s in expect.items()}, g, stack.probes[i], {k: t[i] for k, t in auto.items()})
            for k, s in own.items():
                expect[k][i] = s
    got = {k: v.copy() for k, v in sigma.items()}
    stacked_analytic_noise(d, got, grads, stack.probes, auto)
    for k, value in expect.items():
        assert value.tobytes() == got[k].tobytes(), k


def test_small_stacked_calls_run_on_one_thread_and_the_count_comes_back():
    d = analytic.builtin("softmax")
    seen = []

    def forward(xp, Z):
        seen.append(torch.get_num_threads())
        return d.forward(xp, Z)

    counting = analytic.Derivation(name="softmax_counting", shapes=d.shapes, forward=forward, gradients=d.gradients, output=d.output)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        p = a_point(counting)
        checked = single.check_point(counting, p, mode="exhaustive")  # NumPy and plain torch calls
        seen.clear()
        assert single.stack_of_one(counting, p, checked, 0, None, noise=True).passed
        assert seen and set(seen) == {1}  # every batched call of the stack on one thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# --- the user calls a point keeps: the stack's unperturbed row is the forward's evaluation under torch ----------------
def _library_dependent(xp, X, W):
    """f in NumPy, and 1e-6 more under torch (vmapped or not): a forward that depends on the array library."""
    return xp.sum((X @ W) ** 2) + (0.0 if isinstance(X, np.ndarray) else 1e-6)


def _writes_into_grad(X, W):
    h = X @ W
    X *= 0.0  # into its input: warned where the gradients are judged, not where the forward stops the check first
    return {"X": 2 * h @ W.T, "W": 2 * (X + 0.0).T @ h}


def test_a_forward_that_depends_on_the_library_is_the_error_the_checks_in_order_give():
    d = analytic.Derivation(name="by_library", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=_library_dependent, gradients=_writes_into_grad)
    p = draw_point(d, {"N": 3, "D": 2, "M": 2}, 5)
    f_numpy = float(np.sum((p.params["X"] @ p.params["W"]) ** 2))
    f_torch = float(torch.sum((torch.from_numpy(p.params["X"]) @ torch.from_numpy(p.params["W"])) ** 2)) + 1e-6
    rep = single.evaluate(d, p)
    assert rep.status == "error"
    assert rep.message == (
        f"forward gives {f_numpy!r} under NumPy but {f_torch!r} under torch at the same point: it is not deterministic,"
        " or it depends on the array library"
    )
    # Decided before the gradients are called, as the torch evaluation comes before them: nothing of theirs is said.
    assert rep.modified_in_place == [] and not rep.gradients and not rep.warnings


def _cancelling(name, forward):
    """f = Σ tanh(2·X w), whose terms are ±(1 − 1e-10) at the point below: f ≈ 1e-10 against Σ|terms| = 2."""

    def gradients(X, w):
        s = 1 - np.tanh(X @ (2 * w)) ** 2
        return {"X": 2 * np.outer(s, w), "w": 2 * X.T @ s}

    return analytic.Derivation(name=name, shapes={"X": ("N", "D"), "w": ("D",)}, forward=forward, gradients=gradients)


def _cancelling_point(d):
    p = draw_point(d, {"N": 2, "D": 5}, 14)
    f_numpy = float(np.sum(np.tanh(p.params["X"] @ (2 * p.params["w"]))))
    f_torch = float(torch.sum(torch.tanh(torch.from_numpy(p.params["X"]) @ (2 * torch.from_numpy(p.params["w"])))))
    assert f_numpy != f_torch and abs(f_numpy - f_torch) > 1e-8 * abs(f_numpy)  # tanh rounds differently in each library
    return p


def test_a_forward_whose_terms_cancel_differs_between_the_libraries_by_rounding_alone():
    d = _cancelling("cancelling", lambda xp, X, w: xp.sum(xp.tanh(X @ (2 * w))))
    p = _cancelling_point(d)
    assert single.evaluate(d, p).status == "pass"
    assert single.torch_problem(d, p.params, None, float(np.sum(np.tanh(p.params["X"] @ (2 * p.params["w"]))))) is None


def test_a_forward_whose_terms_cancel_and_that_draws_from_each_librarys_generator_is_refused():
    """Seeded alike before every call, NumPy repeats agree, but NumPy's and torch's generators draw different
    numbers: f differs by about 1e-6·Σ|terms|, far more than its rounding, where it cancels as well."""

    def forward(xp, X, w):
        n = X.shape[0]
        u = np.random.rand(n) if isinstance(X, np.ndarray) else torch.rand(n, dtype=X.dtype)
        return xp.sum(xp.tanh(X @ (2 * w)) * (1.0 + 1e-6 * u))

    d = _cancelling("cancelling_draws", forward)
    rep = single.evaluate(d, _cancelling_point(d))
    assert rep.status == "error"
    assert rep.message.endswith("under torch at the same point: it is not deterministic, or it depends on the array library")


def _squares(name, forward):
    """f = ‖X W‖² with its right gradients and ``forward`` as written."""
    return analytic.Derivation(
        name=name, shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=forward, gradients=lambda X, W: {"X": 2 * (X @ W) @ W.T, "W": 2 * X.T @ (X @ W)}
    )


def test_a_forward_random_at_some_points_only_is_an_error_at_those_points_alone_and_in_the_stack():
    from verigrad.checks.verdict import evaluate_group

    def forward(xp, X, W):
        f = xp.sum((X @ W) ** 2)
        if float(X[0, 0]) > 0 and isinstance(X, np.ndarray):  # NumPy draws a mask of its own only at these points
            return f * (1.0 + float(np.random.default_rng().random()))
        return f

    d = _squares("random_somewhere", forward)
    pts = [draw_point(d, {"N": 2, "D": 2, "M": 2}, s) for s in range(10)]
    random_at = [p.params["X"][0, 0] > 0 for p in pts]
    assert any(random_at) and not all(random_at)
    for reports in ([single.evaluate(d, p) for p in pts], list(evaluate_group(d, pts))):
        assert [r.status for r in reports] == ["error" if r_ else "pass" for r_ in random_at]
        assert all("forward is not deterministic" in r.message for r, r_ in zip(reports, random_at, strict=True) if r_)


def test_a_forward_that_writes_into_its_input_at_some_sizes_only_is_warned_at_those():
    from verigrad.checks.verdict import evaluate_group

    def forward(xp, X, W):
        f = xp.sum((X @ W) ** 2)
        if isinstance(X, np.ndarray) and X.shape[0] >= 3:
            X *= 2.0  # after its value: the value is right, the caller's X is not
        return f

    d = _squares("writes_at_n3", forward)
    for n, written in ((2, []), (3, ["X"])):
        pts = [draw_point(d, {"N": n, "D": 2, "M": 2}, s) for s in range(4)]
        for reports in ([single.evaluate(d, p) for p in pts], list(evaluate_group(d, pts))):
            assert all(r.status == "pass" and r.forward_modified_in_place == written for r in reports), n
            assert all(any(w.startswith("forward modified its input X") for w in r.warnings) == bool(written) for r in reports)
