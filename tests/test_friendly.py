"""Verdicts on real code: a backward that writes into grad_output or its inputs is judged on its values (it is
handed copies) with a warning naming the mutation in every report; right values with a kept axis ((1, D) or
(D, 1) for a (D,) parameter) are diagnosed as exactly that, and a batch sum really missing still is one."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from verigrad import Derivation
from verigrad.checks import check
from verigrad.checks.diagnose import diagnose
from verigrad.checks.report import FAIL, PASS, Kind, Report, RunReport, render
from verigrad.checks.report.html import esc, render_html
from verigrad.checks.report.junit import render_junit
from verigrad.checks.report.markdown import escape, render_markdown
from verigrad.checks.search import draw_point
from verigrad.checks.search.coverage import Coverage, carry_warnings
from verigrad.checks.verdict import evaluate, evaluate_group
from verigrad.checks.verdict.calls import forward_mutation_warnings, mutation_warnings

EXAMPLES = 10
SEED = 0
#: The warning's words (checks/verdict/calls.py): what was modified and what that does to the caller.
INTO_DOUT = "gradients modified grad_output in place (dx = dout; dx[...] = ...): its caller's upstream gradient is changed"
INTO_X = "gradients modified their input X in place"


def relu(xp, X):
    return xp.maximum(X, 0.0)


def relu_into_dout(X, grad_output):
    dx = grad_output
    dx[X <= 0] = 0.0
    return {"X": dx}


def relu_into_dout_doubled(X, grad_output):
    dx = grad_output
    dx[X <= 0] = 0.0
    dx *= 2.0  # the slip
    return {"X": dx}


def relu_into_x(X, grad_output):
    X[...] = X > 0  # the mask written over the input
    return {"X": grad_output * X}


def relu_into_x_wrong(X, grad_output):
    X[...] = X < 0  # the slip: the mask inverted, written over the input
    return {"X": grad_output * X}


def layer(gradients, name=None):
    """Built here: a Derivation at module level is collected by the pytest plugin as a check of its own."""
    return Derivation(name=name or gradients.__name__, shapes={"X": ("N", "D")}, forward=relu, gradients=gradients,
                      output=("N", "D"), kinks=lambda xp, X: [X])


def at_point():
    """A point with entries on both sides of the kink (the mutation shows), with its grad_output."""
    X = np.array([[1.5, -0.7, 0.3], [-1.2, 0.8, -0.4]])
    G = np.array([[0.6, -1.1, 0.9], [0.4, 1.3, -0.2]])
    return X, G


def views(report: Report) -> dict[str, str]:
    """Each report's text, as a reader gets it: the JSON's and the JUnit XML's strings, Markdown and HTML as written."""
    run = RunReport([report], seed=SEED)
    doc = run.to_dict()["derivations"][0]
    junit = ET.fromstring(render_junit(run).split("?>", 1)[1])
    return {"json": "\n".join(doc["warnings"]), "terminal": render(run), "markdown": render_markdown(run),
            "junit": "\n".join(e.text or "" for e in junit.iter("system-out")), "html": render_html(run)}


#: How each view writes a warning's text (Markdown and HTML escape it).
SPELLED = {"json": str, "terminal": str, "markdown": escape, "junit": str, "html": esc}


# --- gradients that write into their arguments: verdict on the values, a warning in every report ---------------


@pytest.mark.parametrize(("gradients", "status", "warning"), [
    (relu_into_dout, PASS, INTO_DOUT), (relu_into_dout_doubled, FAIL, INTO_DOUT),
    (relu_into_x, PASS, INTO_X), (relu_into_x_wrong, FAIL, INTO_X),
], ids=["dout-right", "dout-wrong", "input-right", "input-wrong"])
def test_a_point_is_judged_on_the_values_with_a_warning(gradients, status, warning):
    X, G = at_point()
    X0, G0 = X.copy(), G.copy()
    report = check(layer(gradients), at={"X": X, "grad_output": G})
    assert report.status == status, report.message
    assert all(g.status == status for g in report.gradients)
    assert report.modified_in_place and any(warning in w for w in report.warnings), report.warnings
    assert np.array_equal(X, X0) and np.array_equal(G, G0)  # the caller's arrays are never handed to user code
    for name, text in views(report).items():
        assert SPELLED[name](warning) in text, name


@pytest.mark.parametrize(("gradients", "status"), [(relu_into_dout, PASS), (relu_into_dout_doubled, FAIL)], ids=["right", "wrong"])
def test_projection_mode_judges_them_on_the_values_too(gradients, status):
    X, G = at_point()
    report = check(layer(gradients), at={"X": X, "grad_output": G}, mode="projection")
    assert report.mode == "projection" and report.status == status, report.message
    assert any(w.startswith(INTO_DOUT) for w in report.warnings), report.warnings


def test_the_warning_is_one_line_in_the_json_and_the_terminal():
    X, G = at_point()
    report = check(layer(relu_into_dout), at={"X": X, "grad_output": G})
    doc = json.loads(json.dumps(RunReport([report], seed=SEED).to_dict(), ensure_ascii=False))
    assert [w for w in doc["derivations"][0]["warnings"] if w.startswith(INTO_DOUT)], doc["derivations"][0]["warnings"]
    line = next(x for x in render(RunReport([report], seed=SEED)).splitlines() if INTO_DOUT in x)
    assert "relu_into_dout" in line  # the terminal names the derivation the warning is about


def test_a_wrong_backward_that_writes_into_dout_is_diagnosed_on_its_values():
    report = check(layer(relu_into_dout_doubled), examples=EXAMPLES, seed=SEED, database=False)
    assert report.status == FAIL, report.message
    d = report.gradients[0].diagnosis
    assert d.kind == Kind.SCALE and d.details["scale_factor"] == 2.0, d.sentence
    assert any(w.startswith(INTO_DOUT) for w in report.warnings), report.warnings


@pytest.mark.parametrize(("gradients", "warning"), [(relu_into_dout, INTO_DOUT), (relu_into_x, INTO_X)], ids=["dout", "input"])
def test_the_search_passes_them_with_the_warning(gradients, warning):
    report = check(layer(gradients), examples=EXAMPLES, seed=SEED, database=False)
    assert report.status == PASS, report.message
    assert sum(warning in w for w in report.warnings) == 1, report.warnings  # once, however many points showed it


def test_the_stacked_path_gives_the_single_checks_verdicts_and_warnings():
    d = layer(relu_into_dout)
    points = [draw_point(d, {"N": 3, "D": 4}, s) for s in range(4)]
    together = list(evaluate_group(d, points))
    alone = [evaluate(d, p) for p in points]
    assert [r.status for r in together] == [r.status for r in alone] == [PASS] * len(points)
    assert [r.warnings for r in together] == [r.warnings for r in alone]
    shown = [r for r, p in zip(together, points, strict=True) if np.any(p.params["X"] <= 0)]
    assert shown and all(any(w.startswith(INTO_DOUT) for w in r.warnings) for r in shown)


def test_the_search_carries_the_warning_from_any_point_it_checked():
    seen = Report(name="d", status=PASS, warnings=[*mutation_warnings(["grad_output"]), "something else"], modified_in_place=["grad_output"])
    coverage = Coverage()
    coverage.see(Report(name="d", status=PASS))
    coverage.see(seen)
    coverage.see(seen)
    reported = Report(name="d", status=PASS)
    carry_warnings(reported, coverage)
    assert reported.warnings == mutation_warnings(["grad_output"])  # once, and only the mutation's
    assert reported.modified_in_place == ["grad_output"]


def test_a_forward_that_writes_into_its_input_is_judged_on_copies_with_a_warning():
    def forward(xp, X):
        X *= 2.0  # written into the caller's array: evaluated twice on one array, it would give another value
        return xp.sum(X**2)

    d = Derivation(name="forward_into_x", shapes={"X": ("N",)}, forward=forward, gradients=lambda X: {"X": 8 * X})
    report = check(d, at={"X": np.array([1.0, -2.0])})
    assert report.status == PASS, report.message
    assert report.forward_modified_in_place == ["X"] and report.to_dict()["forward_modified_in_place"] == ["X"]
    assert forward_mutation_warnings(["X"])[0] in report.warnings
    wrong = Derivation(name="forward_into_x_wrong", shapes={"X": ("N",)}, forward=forward, gradients=lambda X: {"X": 2 * X})
    report = check(wrong, seed=1, database=False, examples=3)
    assert report.status == FAIL and report.forward_modified_in_place == ["X"]


# --- a kept axis: values right, shape (1, D) or (D, 1) for (D,) ------------------------------------------------


def scale(xp, X, gamma):
    return X * gamma


def scaled(gradients, name):
    return Derivation(name=name, shapes={"X": ("N", "D"), "gamma": ("D",)}, forward=scale, gradients=gradients,
                      output=("N", "D"), check=["gamma"])


def dgamma_row(X, gamma, grad_output):
    return {"gamma": (grad_output * X).sum(axis=0, keepdims=True)}


def dgamma_column(X, gamma, grad_output):
    return {"gamma": (grad_output * X).sum(axis=0)[:, None]}


def dgamma_per_sample(X, gamma, grad_output):
    return {"gamma": grad_output * X}  # the batch sum really missing


def dgamma_row_doubled(X, gamma, grad_output):
    return {"gamma": 2.0 * (grad_output * X).sum(axis=0, keepdims=True)}  # a kept axis, but the values wrong too


@pytest.mark.parametrize(("gradients", "shape", "axes"), [(dgamma_row, "(1, D)", [0]), (dgamma_column, "(D, 1)", [1])], ids=["1D", "D1"])
def test_a_kept_axis_with_right_values_is_kept_axis(gradients, shape, axes):
    report = check(scaled(gradients, gradients.__name__), examples=EXAMPLES, seed=SEED, database=False)
    assert report.status == FAIL, report.message
    d = report.gradients[0].diagnosis
    assert d.kind == Kind.KEPT_AXIS, d.sentence
    assert f"values right; shape {shape} where gamma has shape (D,): sum without keepdims" in d.sentence, d.sentence
    assert d.sentence.startswith("∂f/∂gamma: ") and d.details["kept_axes"] == axes
    assert d.details["tried_on"] == 5 and d.confirmed_on >= 4
    assert d.details["expected_shape"] == [report.shapes["D"]]


def test_a_missing_batch_sum_is_still_missing_batch_sum():
    report = check(scaled(dgamma_per_sample, "dgamma_per_sample"), examples=EXAMPLES, seed=SEED, database=False)
    d = report.gradients[0].diagnosis
    assert report.status == FAIL and d.kind == Kind.MISSING_BATCH_SUM, d.sentence


def test_a_batch_of_one_per_sample_is_not_a_kept_axis():
    """At N = 1 per-sample gradients are (1, D) with the values of the sum: only other sizes tell them apart."""
    d = scaled(dgamma_per_sample, "dgamma_per_sample")
    evidence = []
    for s in range(5):
        point = draw_point(d, {"N": 1, "D": 3}, s)
        evidence.append((point, evaluate(d, point)))
    assert all(r.gradients[0].analytic.shape == (1, 3) for _, r in evidence)
    found = diagnose(d, "gamma", evidence)
    assert found.kind == Kind.MISSING_BATCH_SUM, found.sentence


def test_a_kept_axis_with_wrong_values_is_not_kept_axis():
    report = check(scaled(dgamma_row_doubled, "dgamma_row_doubled"), examples=EXAMPLES, seed=SEED, database=False)
    d = report.gradients[0].diagnosis
    assert report.status == FAIL and d.kind != Kind.KEPT_AXIS, d.sentence
