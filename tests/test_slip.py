"""Locate the slip: each failing gradient points at the first wrong line of its derivation (checks/diagnose/slip.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from verigrad import Derivation
from verigrad.checks import check
from verigrad.checks.cli import main
from verigrad.checks.report import Mark, RunReport, Status
from verigrad.checks.report.annotations import github_annotations
from verigrad.checks.report.html import render_html
from verigrad.checks.report.junit import render_junit
from verigrad.checks.report.markdown import render_markdown
from verigrad.checks.report.terminal import render
from verigrad.checks.search.points import draw_point
from verigrad.reference import intermediates

from .slips import cases

NOTE = Path(__file__).resolve().parents[1] / "examples" / "note_two_layer.py"
CASES = Path(cases.__file__)
#: Sizes of the "larger" point every case is also checked at: every dim distinct and above 1, so that no relation
#: holds by the accident of a one-entry array.
LARGER = (3, 4, 5, 6)


def _note():
    spec = importlib.util.spec_from_file_location("note_two_layer", NOTE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def line_of(path: Path, text: str, after: str | None = None) -> int:
    """The line of ``text`` in ``path`` (the first after the line holding ``after``, when given)."""
    lines = path.read_text().splitlines()
    start = 0 if after is None else next(k for k, line in enumerate(lines) if after in line)
    return next(k for k, line in enumerate(lines[start:], start + 1) if text in line)


def at_larger(d, seed: int = 5):
    """check(d) at one point with every dim distinct and > 1."""
    sizes = dict(zip(d.symbols, LARGER, strict=False))
    p = draw_point(d, sizes, seed)
    at = dict(p.params)
    if d.is_layer:
        at["grad_output"] = p.grad_output
    return check(d, at=at, seed=0)


def slips(report) -> dict[str, tuple[int, str]]:
    return {g.param: (g.slip.line, g.slip.sentence) for g in report.failures if g.slip is not None}


# --- the note's two slips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["search", "larger"])
def test_the_sign_slip_is_named_for_every_gradient_that_inherits_it(how):
    d = _note().note_sign
    report = check(d, seed=0, examples=5, database=False) if how == "search" else at_larger(d)
    line = line_of(NOTE, "grad_Y_pred = 2.0 * (Y - Y_pred)")
    found = slips(report)
    assert sorted(found) == ["W1", "W2", "X"]
    for param, (at, sentence) in found.items():
        assert at == line, (param, sentence)
        assert sentence == (
            f"line {line} `grad_Y_pred = 2.0 * (Y - Y_pred)` is −1 × ∂f/∂Y_pred; ∂f/∂X, ∂f/∂W1 and ∂f/∂W2 inherit it"
        )


@pytest.mark.parametrize("how", ["search", "larger"])
def test_the_skipped_sigmoid_derivative_is_named_at_its_line(how):
    d = _note().note_sigmoid
    report = check(d, seed=0, examples=5, database=False) if how == "search" else at_larger(d)
    line = line_of(NOTE, "grad_W1 = X.T @ grad_h_sigmoid")
    assert [g.param for g in report.failures] == ["W1"]
    assert slips(report) == {"W1": (line, f"line {line} `grad_W1 = X.T @ grad_h_sigmoid`: ∂f/∂h_sigmoid used where ∂f/∂h belongs")}
    last = report.failures[0].trace[-1]
    assert (last.line, last.mark) == (line, Mark.WRONG) and "∂f/∂W1" in last.matched  # the step's own target


def test_a_right_derivation_has_no_slip_and_no_trace():
    report = check(_note().note_right, seed=0, examples=5, database=False)
    assert report.passed
    assert all(g.slip is None and g.slip_reason is None and not g.trace for g in report.gradients)


def test_the_trace_marks_each_step_and_what_it_matched():
    report = at_larger(_note().note_sign)
    (g,) = [g for g in report.failures if g.param == "W2"]
    steps = [(t.line, t.mark, t.matched) for t in g.trace]
    line = lambda text: line_of(NOTE, text, after="def gradients_sign")
    assert steps == [
        (line("h = X @ W1"), Mark.RIGHT, "h"),
        (line("h_sigmoid = 1.0"), Mark.RIGHT, "h_sigmoid"),
        (line("Y_pred = h_sigmoid @ W2"), Mark.RIGHT, "Y_pred"),
        (line("grad_Y_pred = "), Mark.WRONG, "−1 × ∂f/∂Y_pred"),
        (line("grad_W2 = "), Mark.WRONG, "−1 × ∂f/∂W2"),
    ]
    text = render(RunReport([report]))
    assert "✗ line" in text and "✓ line" in text and "← slip" in text
    assert "slip: line" in render_markdown(RunReport([report]))
    assert "slip: line" in render_junit(RunReport([report])) and "✗ line" in render_junit(RunReport([report]))
    html = render_html(RunReport([report]))
    assert '<table class="trace">' in html and "<td>✗</td>" in html and "← slip" in html


# --- where a slip can be ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["search", "larger"])
def test_a_layer_slip_is_named_for_both_gradients(how):
    d = cases.tanh_layer
    report = check(d, seed=1, examples=5, database=False) if how == "search" else at_larger(d)
    line = line_of(CASES, "grad_h = grad_output * (1.0 - t)")
    found = slips(report)
    assert sorted(found) == ["W", "X"]
    assert {at for at, _ in found.values()} == {line}
    assert all("is not ∂f/∂h" in s and "∂f/∂X and ∂f/∂W inherit it" in s for _, s in found.values())


@pytest.mark.parametrize("how", ["search", "larger"])
def test_an_in_place_write_is_the_slip(how):
    d = cases.relu_inplace
    report = check(d, seed=1, examples=5, database=False) if how == "search" else at_larger(d)
    line = line_of(CASES, "grad_h[h > 0] = 0")
    found = slips(report)
    assert list(found) == ["W1"]
    assert found["W1"][0] == line, found


@pytest.mark.parametrize("how", ["search", "larger"])
def test_a_slip_inside_a_helper_of_the_same_file(how):
    d = cases.helper_slip
    report = check(d, seed=1, examples=5, database=False) if how == "search" else at_larger(d)
    line = line_of(CASES, "grad_h = grad_s * s", after="def _back_through_sigmoid")
    found = slips(report)
    assert sorted(found) == ["W1", "X"]
    assert {at for at, _ in found.values()} == {line}


@pytest.mark.parametrize("how", ["search", "larger"])
def test_a_slip_built_inside_the_return_statement_is_at_its_entry(how):
    d = cases.return_slip
    report = check(d, seed=1, examples=5, database=False) if how == "search" else at_larger(d)
    line = line_of(CASES, '"W1": X.T @ grad_s,')
    assert slips(report) == {"W1": (line, f"line {line} `'W1': X.T @ grad_s`: ∂f/∂s used where ∂f/∂h belongs")}


def test_a_torch_function_backward():
    report = at_larger(cases.function_slip)
    line = line_of(CASES, "grad_W = -(X.T @ G)")
    assert slips(report) == {"W": (line, f"line {line} `grad_W = -(X.T @ G)` is −1 × ∂f/∂W")}


def test_a_forward_without_torch_intermediates_says_what_it_could_not_check():
    report = at_larger(cases.no_intermediates)
    (g,) = report.failures
    assert g.slip is None
    assert "no torch intermediates" in g.slip_reason and "could not be compared" in g.slip_reason
    assert [t.mark for t in g.trace] == [Mark.UNCHECKED]
    assert "no slip named: the forward computes no torch intermediates" in render(RunReport([report]))


def _numpy_only_forward(xp, X):
    out = np.array(X, copy=True)
    out[out < 0] = 0  # an in-place write: NumPy only
    return float(np.sum(out**2))


def _numpy_only_wrong(X):
    grad = 2 * X
    grad[X < 0] = 0
    return {"X": 3 * grad}


def test_a_numpy_only_forward_gets_its_slip_from_finite_differences():
    d = Derivation(name="numpy_only_slip", shapes={"X": ("N",)}, forward=_numpy_only_forward, gradients=_numpy_only_wrong, namespaces=("numpy",))
    report = check(d, at={"X": np.array([0.5, -1.0, 2.0])})
    (g,) = report.failures
    line = line_of(Path(__file__), '{"X": 3 * grad}')
    assert slips(report) == {"X": (line, f"line {line} `'X': 3 * grad` is 3 × ∂f/∂X")}
    assert "not compared" not in {t.matched for t in g.trace}


def test_a_gradient_that_raised_has_a_null_slip_with_a_reason():
    def gradients(X, W, grad_output):
        raise ValueError("no")

    from verigrad import Derivation

    d = Derivation(name="raises", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=cases.linear_forward, gradients=gradients, output=("N", "M"))
    report = at_larger(d)
    assert report.status == Status.FAIL
    for g in report.failures:
        assert g.slip is None and "raised" in g.slip_reason
        assert g.to_dict()["slip"] is None and g.to_dict()["slip_reason"] == g.slip_reason


# --- the reference quantities -----------------------------------------------------------------------------------


def test_intermediates_are_named_after_the_forwards_locals_with_autograds_gradient():
    d = _note().note_right
    p = draw_point(d, dict(zip(d.symbols, LARGER, strict=False)), 3)
    found = intermediates(d, p.params)
    named = {q.name: q for q in found.quantities}
    assert {"X", "W1", "W2", "Y", "h", "h_sigmoid", "Y_pred"} <= set(named)
    Y, Y_pred = p.params["Y"], named["Y_pred"].value
    np.testing.assert_allclose(named["Y_pred"].grad, 2.0 * (Y_pred - Y), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(named["h_sigmoid"].value, 1.0 / (1.0 + np.exp(-p.params["X"] @ p.params["W1"])), rtol=1e-12)


# --- the JSON field and the annotation --------------------------------------------------------------------------


def test_json_and_annotation_land_on_the_slip(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(NOTE, tmp_path / "note.py")
    code = main(["check", "note.py", "--only", "note_sigmoid", "--seed", "0", "--examples", "5", "--no-database",
                 "--json", "r.json", "--annotations", "github"])
    assert code == 1
    line = line_of(tmp_path / "note.py", "grad_W1 = X.T @ grad_h_sigmoid")
    (w1,) = [g for g in json.loads((tmp_path / "r.json").read_text())["derivations"][0]["gradients"] if g["status"] == "fail"]
    assert w1["slip"] == {
        "file": str(tmp_path / "note.py"),
        "line": line,
        "source": "grad_W1 = X.T @ grad_h_sigmoid",
        "sentence": f"line {line} `grad_W1 = X.T @ grad_h_sigmoid`: ∂f/∂h_sigmoid used where ∂f/∂h belongs",
    }
    assert w1["trace"][-1]["mark"] == "wrong" and w1["trace"][-1]["line"] == line
    commands = [c for c in capsys.readouterr().out.splitlines() if c.startswith("::error")]
    assert commands == [c for c in commands if c.startswith(f"::error file=note.py,line={line},")] and len(commands) == 1


def test_an_annotation_without_a_slip_stays_at_the_gradients_line(tmp_path):
    report = at_larger(cases.no_intermediates)
    (line,) = github_annotations(RunReport([report]), here=str(CASES.parent))
    assert line.startswith(f"::error file=cases.py,line={line_of(CASES, 'def sum_gradients')},")


def test_gradients_found_failing_at_different_sizes_each_point_at_their_own_line():
    report = check(cases.two_slips, seed=2, examples=20, database=False)
    found = slips(report)
    assert sorted(found) == ["W", "X"]
    assert found["X"][0] == line_of(CASES, "grad_X = -(r @ W.T)")
    assert found["W"][0] == line_of(CASES, "grad_W = X[:2].T @ r[:2]")
    assert report.gradients[1].counterexample["shapes"]["N"] >= 3  # W is right for N ≤ 2: found in a later round
    assert all("inherit" not in sentence for _, sentence in found.values())


def test_a_backward_returning_a_tuple_through_the_adapter():
    report = at_larger(cases.adapter_slip)
    line = line_of(CASES, "dw = 2.0 * x.T @ dout")
    assert slips(report) == {"w": (line, f"line {line} `dw = 2.0 * x.T @ dout` is 2 × ∂f/∂w")}


# --- the forward recomputed is never the slip; the sentence says what is wrong ----------------------------------


@pytest.mark.parametrize("how", ["search", "larger"])
def test_a_recomputation_of_the_forward_is_never_the_slip(how):
    report = check(cases.relu_dY, seed=0, database=False) if how == "search" else at_larger(cases.relu_dY)
    line = line_of(CASES, "dY = 2 * (S - Y)")
    assert slips(report) == {"Y": (line, f"line {line} `dY = 2 * (S - Y)` is −1 × ∂f/∂Y")}
    (g,) = report.failures
    assert [t.mark for t in g.trace if t.line != line] and all(t.mark != Mark.WRONG for t in g.trace if t.line != line)


def test_a_line_equal_to_its_target_within_the_match_says_by_how_much_it_differs():
    rng = np.random.default_rng(0)
    report = check(cases.near, at={"X": rng.standard_normal((3, 4)), "W": rng.standard_normal((4, 2))})
    (g,) = report.failures
    assert g.slip is not None and g.slip.finding.startswith("differs from ∂f/∂X by up to "), g.slip.sentence
    (wrong,) = [t for t in g.trace if t.mark == Mark.WRONG]
    assert wrong.matched.startswith("differs from ∂f/∂X by up to ")


def test_at_all_ones_dims_the_slip_is_located_again_where_the_dims_differ():
    from .mutants.two_layer import tlr_mask_on_upstream

    report = check(tlr_mask_on_upstream, examples=20, seed=1234, database=False)
    assert set(report.shapes.values()) == {1}  # the counterexample: every local has every parameter's shape
    path = Path(tlr_mask_on_upstream.gradients.__code__.co_filename)
    line = line_of(path, "dh = da * (da > 0)")
    assert {p: s[0] for p, s in slips(report).items()} == {"W1": line, "X": line}
    assert all("where the dims differ" in s for _, s in slips(report).values())
