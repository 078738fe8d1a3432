"""Per-gradient verdicts: after a failure the search goes on for the gradients that still pass, so each failing
gradient has its own smallest counterexample, figures, diagnosis and replay, shown at its own point in every view;
the gradients that pass get their budget once; a gradient that no point judged is an error, not a pass."""

import dataclasses
import json
import os
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from verigrad import Derivation, analytic
from verigrad.checks import check
from verigrad.checks.report import ERROR, FAIL, PASS, Kind, RunReport, render
from verigrad.checks.report.html import render_html
from verigrad.checks.report.junit import render_junit
from verigrad.checks.report.markdown import render_markdown
from verigrad.checks.search import VALUES_PER_SIZE, search
from verigrad.checks.search.database import known_failures

EXAMPLES = 30
#: ∂f/∂W below is wrong only from this batch size on.
WRONG_FROM = 5


def forward(xp, X, W):
    return xp.sum((X @ W) ** 2)


def two_wrong_gradients(X, W):
    """∂f/∂X with its sign flipped at every size; ∂f/∂W 1.5 times too large once N >= WRONG_FROM."""
    r = 2 * (X @ W)
    grad_W = X.T @ r
    if X.shape[0] >= WRONG_FROM:  # the deliberate slip: only large batches take this branch
        grad_W = 1.5 * grad_W
    return {"X": -(r @ W.T), "W": grad_W}


def x_wrong_gradients(X, W):
    r = 2 * (X @ W)
    return {"X": -(r @ W.T), "W": X.T @ r}


def derivation(gradients, name, **kw):
    """Built here: a Derivation at module level is collected by the pytest plugin as a check of its own."""
    return Derivation(name=name, shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=forward, gradients=gradients, **kw)


@pytest.fixture(scope="module", params=[0, 3], ids=lambda s: f"seed{s}")
def two_wrong(request):
    d = derivation(two_wrong_gradients, "two_wrong")
    return d, check(d, examples=EXAMPLES, seed=request.param, database=False)


def by_param(report):
    return {g.param: g for g in report.gradients}


def test_both_wrong_gradients_fail_each_at_its_own_smallest_counterexample(two_wrong):
    _, report = two_wrong
    assert report.status == FAIL
    g = by_param(report)
    assert (g["X"].status, g["W"].status) == (FAIL, FAIL)
    # ∂f/∂X is wrong everywhere: its counterexample is the derivation's, the first found, shrunk to every dim 1.
    assert set(report.shapes.values()) == {1}
    assert report.counterexample == {"shapes": report.shapes, "seed": report.point_seed}
    assert g["X"].counterexample == {"shapes": report.shapes, "seed": report.point_seed, "replay": report.replay}
    # ∂f/∂W is wrong only from N = WRONG_FROM: its own counterexample, shrunk to that N and the other dims to 1.
    assert g["W"].counterexample["shapes"] == {"N": WRONG_FROM, "D": 1, "M": 1}
    assert f"--replay N={WRONG_FROM},D=1,M=1,seed={g['W'].counterexample['seed']}" in g["W"].counterexample["replay"]


def test_each_failing_gradient_is_diagnosed_at_its_own_point(two_wrong):
    _, report = two_wrong
    g = by_param(report)
    assert g["X"].diagnosis.kind == Kind.SIGN_FLIP
    assert g["W"].diagnosis.kind == Kind.SCALE
    assert g["W"].diagnosis.details["scale_factor"] == pytest.approx(1.5)


def test_a_gradients_figures_are_those_of_its_own_point_and_its_replay_gives_them_again(two_wrong):
    d, report = two_wrong
    w = by_param(report)["W"]
    assert w.analytic.shape == (1, 1)  # D × M at its own point
    again = check(d, replay=(w.counterexample["shapes"], w.counterexample["seed"]))
    w2 = by_param(again)["W"]
    assert w2.status == FAIL
    assert (w2.worst_index, w2.analytic_value, w2.reference_value) == (w.worst_index, w.analytic_value, w.reference_value)
    # At the derivation's point ∂f/∂W is right: the derivation's replay shows ∂f/∂X failing alone.
    first = check(d, replay=(report.shapes, report.point_seed))
    assert [x.param for x in first.failures] == ["X"]


def test_json_gives_each_gradient_its_counterexample(two_wrong):
    _, report = two_wrong
    doc = json.loads(json.dumps(RunReport([report], seed=report.seed).to_dict()))
    (entry,) = doc["derivations"]
    grads = {x["param"]: x for x in entry["gradients"]}
    assert {k: grads["X"]["counterexample"][k] for k in ("shapes", "seed")} == entry["counterexample"]
    assert grads["X"]["counterexample"]["replay"] == entry["replay"]
    assert grads["W"]["counterexample"]["shapes"]["N"] == WRONG_FROM
    assert grads["W"]["counterexample"]["replay"] != entry["replay"]


def _replays(report):
    g = by_param(report)
    return g["X"].counterexample["replay"], g["W"].counterexample["replay"]


def test_the_terminal_shows_each_failing_gradient_at_its_own_point(two_wrong):
    _, report = two_wrong
    text = render(RunReport([report], seed=report.seed))
    x_replay, w_replay = _replays(report)
    x_at, w_at = text.index("FAIL two_wrong: ∂f/∂X"), text.index("FAIL two_wrong: ∂f/∂W")
    assert x_at < text.index("replay: " + x_replay) < w_at < text.index(f"at N={WRONG_FROM}, D=1, M=1") < text.index("replay: " + w_replay)
    assert text.count("replay: ") == 2


def test_markdown_and_html_show_each_failing_gradient_at_its_own_point(two_wrong):
    _, report = two_wrong
    run = RunReport([report], seed=report.seed)
    x_replay, w_replay = _replays(report)
    md = render_markdown(run)
    assert md.index("∂f/∂X") < md.index("--replay N=1,D=1,M=1") < md.index("— ∂f/∂W") < md.index(f"At N={WRONG_FROM}, D=1, M=1")
    assert md.index(f"At N={WRONG_FROM}, D=1, M=1") < md.index(f"--replay N={WRONG_FROM},D=1,M=1")
    page = render_html(run)
    w_section = page[page.index('id="d0g1"') :]
    assert f"at N={WRONG_FROM}, D=1, M=1" in w_section and w_replay.split(" --replay ")[1] in w_section
    assert x_replay.split(" --replay ")[1] in page[page.index('id="d0g0"') : page.index('id="d0g1"')]


def test_junit_gives_each_failing_gradient_its_own_point_and_replay(two_wrong):
    _, report = two_wrong
    x_replay, w_replay = _replays(report)
    cases = {c.get("name"): c for c in ET.fromstring(render_junit(RunReport([report], seed=report.seed))).iter("testcase")}
    x_body, w_body = cases["X"].find("failure").text, cases["W"].find("failure").text
    assert "replay: " + x_replay in x_body and w_replay not in x_body
    assert "replay: " + w_replay in w_body and x_replay not in w_body
    assert f"at N={WRONG_FROM}, D=1, M=1" in w_body


# --- what it costs ---------------------------------------------------------------------------------


@pytest.fixture
def rounds(monkeypatch):
    """The budget of every round the search runs."""
    budgets = []
    real = search.explore

    def counting(rnd, coverage):
        budgets.append(rnd.budget)
        return real(rnd, coverage)

    monkeypatch.setattr(search, "explore", counting)
    return budgets


@pytest.mark.parametrize("seed", [0, 1])
def test_the_gradients_that_pass_get_their_budget_once(seed, rounds):
    d = derivation(x_wrong_gradients, "x_wrong")
    report = check(d, examples=EXAMPLES, seed=seed, database=False)
    assert [g.status for g in report.gradients] == [FAIL, PASS]
    # ∂f/∂X fails at the first example tried: no example was clean for ∂f/∂W yet, so it gets all of them, once.
    assert rounds == [EXAMPLES, EXAMPLES]
    alone = check(dataclasses.replace(d, name="x_only", check=("X",)), examples=EXAMPLES, seed=seed, database=False)
    assert rounds[2:] == [EXAMPLES]  # checking ∂f/∂X alone: the same first round, and no other
    assert report.examples == alone.examples + EXAMPLES
    assert report.points == alone.points + VALUES_PER_SIZE * EXAMPLES


def test_a_search_where_every_gradient_fails_at_once_runs_one_round(rounds):
    def both_wrong(X, W):
        r = 2 * (X @ W)
        return {"X": 3 * (r @ W.T), "W": -(X.T @ r)}

    both = derivation(both_wrong, "both")
    report = check(both, examples=EXAMPLES, seed=0, database=False)
    assert [g.status for g in report.gradients] == [FAIL, FAIL]
    assert rounds == [EXAMPLES]


def test_a_passing_derivation_runs_one_round(rounds):
    report = check(analytic.builtin("relu_regression"), examples=10, seed=0, database=False)
    assert report.passed and report.examples == 10
    assert rounds == [10]


def test_the_search_for_the_others_stops_with_a_warning_where_the_derivation_cannot_be_checked():
    def forward_breaks(xp, X, W):
        if X.shape[0] >= 6:
            raise RuntimeError("no batches of 6")
        return xp.sum((X @ W) ** 2)

    d = Derivation(name="breaks", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=forward_breaks, gradients=x_wrong_gradients)
    report = check(d, examples=EXAMPLES, seed=0, database=False)
    assert report.status == FAIL
    assert [g.status for g in report.gradients] == [FAIL, PASS]
    (warning,) = [w for w in report.warnings if w.startswith("the search went on for ∂f/∂W after the first failure")]
    assert "stopped at N=6" in warning and "no batches of 6" in warning


def test_each_gradients_counterexample_is_saved_and_tried_first_next_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    d = derivation(two_wrong_gradients, "two_wrong_saved")
    first = check(d, examples=EXAMPLES)
    g = by_param(first)
    entries = known_failures(d, None).entries()
    assert (g["X"].counterexample["shapes"], g["X"].counterexample["seed"]) in entries
    assert (g["W"].counterexample["shapes"], g["W"].counterexample["seed"]) in entries
    second = check(d, examples=EXAMPLES)
    assert {p: x.counterexample for p, x in by_param(second).items()} == {p: x.counterexample for p, x in g.items()}
    assert os.path.isdir(tmp_path / ".hypothesis")


# --- nothing judged ---------------------------------------------------------------------------------


def scaled_square(scale, factor, name):
    """f = scale·Σ X²/2, ∂f/∂X = scale·X (times ``factor``: 1 is right)."""
    return Derivation(name=name, shapes={"X": ("N",)}, forward=lambda xp, X: scale * xp.sum(X**2) / 2, gradients=lambda X: {"X": factor * scale * X})


@pytest.mark.parametrize(("scale", "why"), [(0.0, "is exactly 0 at every entry"), (1e-320, "(the values underflow)")], ids=["zero", "underflow"])
@pytest.mark.parametrize("factor", [1.0, 2.0], ids=["right", "wrong"])
def test_a_gradient_no_point_judged_is_an_error_not_a_pass(scale, why, factor):
    report = check(scaled_square(scale, factor, "tiny"), examples=5, seed=0, database=False)
    assert report.status == ERROR
    (g,) = report.gradients
    assert g.status == ERROR
    assert g.message.startswith("nothing could be judged: ") and why in g.message
    assert report.message == f"∂f/∂X: {g.message}"
    assert "nothing could be judged" in render(RunReport([report]))


def test_an_objective_that_does_not_depend_on_its_parameter_is_an_error():
    d = Derivation(name="zero_w", shapes={"W": ("N",)}, forward=lambda xp, W: 0 * xp.sum(W), gradients=lambda W: {"W": np.zeros_like(W)})
    report = check(d, examples=5, seed=1, database=False)
    assert report.status == ERROR and not report.passed
    assert by_param(report)["W"].status == ERROR
    cases = list(ET.fromstring(render_junit(RunReport([report]))).iter("testcase"))
    assert [c.find("error") is not None for c in cases] == [True]


def test_one_gradient_wrong_and_another_never_judged_fail_and_error():
    def gradients(X, W):
        return {"X": 2 * X, "W": np.zeros_like(W)}

    d = Derivation(name="mixed", shapes={"X": ("N",), "W": ("N",)}, forward=lambda xp, X, W: xp.sum(X**2) / 2 + 0 * xp.sum(W), gradients=gradients)
    report = check(d, examples=5, seed=0, database=False)
    assert report.status == FAIL
    g = by_param(report)
    assert (g["X"].status, g["W"].status) == (FAIL, ERROR)
    assert g["W"].message.startswith("nothing could be judged")


@pytest.mark.parametrize("d", analytic.builtins(), ids=lambda d: d.name)
def test_every_builtin_is_judged_and_passes_in_a_short_search(d):
    report = check(d, examples=5, seed=0, database=False)
    assert report.passed, report.message


def test_the_time_limit_cutting_the_search_for_the_others_short_leaves_the_failure_found():
    def slow_when_large(xp, X, W):
        if X.shape[0] >= 4:
            time.sleep(2.0)
        return xp.sum((X @ W) ** 2)

    d = Derivation(name="slow", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=slow_when_large, gradients=x_wrong_gradients)
    report = check(d, examples=EXAMPLES, seed=0, database=False, timeout=4.0)
    assert report.status == FAIL  # ∂f/∂X, found at N = 1 before the limit
    assert by_param(report)["X"].status == FAIL
    cut = [w for w in report.warnings if w.startswith("the search went on for ∂f/∂W after the first failure and timed out")]
    assert len(cut) == 1 and cut[0].endswith("(the time limit per derivation)")
