"""Every report (terminal, JSON, Markdown, JUnit, HTML) from one result model, on real and hostile runs."""

from __future__ import annotations

import base64
import io
import json
import re
import xml.etree.ElementTree as ET
from html import escape as html_escape

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.image import imread

from verigrad.analytic import Derivation, builtin
from verigrad.checks import Diagnosis, GradientReport, Report, RunReport, check
from verigrad.checks.report import Blame, Kind, Progress, Status, render, write_reports
from verigrad.checks.report.html import COLORMAP, MAX_PIXELS, heatmap, render_html
from verigrad.checks.report.junit import render_junit
from verigrad.checks.report.markdown import render_markdown
from verigrad.checks.report.words import facts, headline, worst_text

__verigrad__ = False  # the derivations below are wrong on purpose: not collected as tests

#: A name with everything a report could choke on: markup, an entity, quotes, a newline, non-ASCII, a table bar.
HOSTILE = "<script>alert(\"x\")</script> & 'q'\nü | `t`"
SUMMARY = re.compile(r"^\d+ passed, \d+ failed(, \d+ errors)?$")
IMG = '<img class="map" src="data:image/png;base64,'
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- small derivations, right and wrong -------------------------------------------------------------


def _forward(xp, W, X):
    return xp.sum(xp.tanh(X @ W) ** 2)


def _right(W, X):
    t = np.tanh(X @ W)
    d = 2 * t * (1 - t**2)
    return {"W": X.T @ d, "X": d @ W.T}


def _tanh(name: str, gradients) -> Derivation:
    return Derivation(name=name, shapes={"W": ("D", "M"), "X": ("N", "D")}, forward=_forward, gradients=gradients)


def _sign_flipped(W, X):
    g = _right(W, X)
    return {**g, "W": -g["W"]}


def _transposed(W, X):  # shape (M, D) instead of (D, M)
    g = _right(W, X)
    return {**g, "W": g["W"].T}


def _raises(W, X):
    raise ValueError("no <gradient> & no \"luck\"\nsecond line")


SIGN_FLIPPED = _tanh("tanh_sign_flipped", _sign_flipped)
WRONG_SHAPE = _tanh("tanh_wrong_shape", _transposed)
RAISES = _tanh("tanh_raises", _raises)
HOSTILE_SIGN = _tanh(HOSTILE, _sign_flipped)


def _search(d: Derivation) -> Report:
    return check(d, examples=6, seed=5, database=False, max_size=4, target="wrong.py")


@pytest.fixture(scope="module")
def passing_run() -> RunReport:
    return RunReport([check(builtin("relu_regression"), examples=3, seed=5, database=False, max_size=3)], seed=5)


@pytest.fixture(scope="module")
def failing_run() -> RunReport:
    reports = [_search(d) for d in (SIGN_FLIPPED, WRONG_SHAPE, RAISES, HOSTILE_SIGN)]
    return RunReport([check(builtin("relu_regression"), examples=3, seed=5, database=False, max_size=3), *reports], seed=5)


@pytest.fixture(scope="module")
def big_run() -> RunReport:
    """A sign flip on a 50×50 parameter, at a replayable point."""
    return RunReport([check(SIGN_FLIPPED, replay=({"D": 50, "M": 50, "N": 3}, 11), target="wrong.py")], seed=11)


def hostile_run() -> RunReport:
    """Hand-built: a diagnosed failure, an undiagnosed one, a pass and an error, all with hostile text."""
    a = np.arange(12.0).reshape(3, 4) - 5.0
    nd = np.zeros((3, 4), dtype=bool)
    nd[0, 0] = True
    common = {"threshold": {"analytic_vs_autograd": 1e-15}, "blame": Blame.ANALYTIC, "entries": 12, "dtype": "float64"}
    diagnosed = GradientReport(
        param=HOSTILE,
        status=Status.FAIL,
        max_abs_err=12.0,
        max_rel_err=2.0,
        worst_index=(2, 3),
        analytic_value=6.0,
        reference_value=-6.0,
        mismatches=11,
        nondifferentiable=[(0, 0)],
        diagnosis=Diagnosis(kind=Kind.SIGN_FLIP, sentence="the sign is <b>flipped</b> & \"wrong\" | `x`", confirmed_on=5),
        analytic=a,
        reference=-a,
        nondiff_mask=nd,
        warnings=["warned <i>&</i>\x07"],
        **common,
    )
    undiagnosed = GradientReport(
        param="b\x1b[31m",
        status=Status.FAIL,
        max_abs_err=1.0,
        max_rel_err=0.5,
        worst_index=(1,),
        analytic_value=2.0,
        reference_value=1.0,
        mismatches=1,
        analytic=np.array([0.0, 2.0, 3.0]),
        reference=np.array([0.0, 1.0, 3.0]),
        **common,
    )
    passing = GradientReport(param="c", status=Status.PASS, max_abs_err=0.0, worst_index=(), analytic=np.array(1.0), reference=np.array(1.0))
    failed = Report(
        name=HOSTILE,
        status=Status.FAIL,
        gradients=[diagnosed, undiagnosed, passing],
        message="first failure",
        shapes={"N": 3, "M": 4},
        point_seed=7,
        replay="verigrad check 'x&y.py' --only '<script>' --replay N=3,M=4,seed=7",
    )
    errored = Report(name="err<&>\"'", status=Status.ERROR, message="forward raised: <img src=x onerror=alert(1)>\nsecond line \x00")
    ok = GradientReport(param="p", status=Status.PASS, max_abs_err=0.0, max_rel_err=0.0, analytic=np.ones(2), reference=np.ones(2))
    timed_out = Report(name="slow", status=Status.ERROR, gradients=[ok], message="timed out after 3 s", shapes={"N": 2}, point_seed=1)
    return RunReport([failed, errored, timed_out], seed=7)


def _runs(request) -> list[RunReport]:
    return [request.getfixturevalue("passing_run"), request.getfixturevalue("failing_run"), hostile_run()]


def _drawn(g: GradientReport) -> int:
    """Heatmaps the HTML report should hold for one gradient: analytic, reference, and their difference."""
    a, r = g.analytic is not None, g.reference is not None
    return a + r + (a and r and np.shape(g.analytic) == np.shape(g.reference))


def _png(uri_tail: str) -> np.ndarray:
    data = base64.b64decode(uri_tail.split('"', 1)[0])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(io.BytesIO(data), format="png")


# --- the runs themselves ------------------------------------------------------------------------------


def test_the_real_runs_have_the_statuses_the_reports_are_tested_on(passing_run, failing_run, big_run):
    assert passing_run.passed
    by_name = {r.name: r for r in failing_run.reports}
    assert [g.param for g in by_name["tanh_sign_flipped"].failures] == ["W"]
    assert by_name["tanh_wrong_shape"].failures[0].analytic.shape != by_name["tanh_wrong_shape"].failures[0].reference.shape
    assert all(g.analytic is None for g in by_name["tanh_raises"].gradients)
    assert by_name[HOSTILE].status == Status.FAIL
    assert big_run.reports[0].failures[0].reference.shape == (50, 50)


def test_every_view_says_what_is_wrong_in_the_same_words(failing_run):
    """Headline and worst entry come from ``words``: the terminal, JUnit and HTML say them verbatim (the facts: not HTML,
    which shows blame in the gradient's heading)."""
    views = {"terminal": render(failing_run), "junit": "".join(ET.fromstring(render_junit(failing_run)).itertext())}
    page = render_html(failing_run)
    failing = [g for r in failing_run.reports if r.name != HOSTILE for g in r.failures]
    assert {g.diagnosis.kind for g in failing} >= {Kind.SIGN_FLIP, Kind.RAISED}
    for g in failing:
        said = [line for words in (headline(g), worst_text(g) or "") for line in words.splitlines()]  # the terminal indents a second line
        for view, text in views.items():
            assert all(words in text for words in [*said, "; ".join(facts(g))]), view
        assert all(html_escape(words) in page for words in said)


# --- JSON ------------------------------------------------------------------------------------------------


def test_every_report_is_written_from_one_run_and_json_round_trips(request, tmp_path):
    for k, run in enumerate(_runs(request)):
        paths = {kind: tmp_path / f"{k}.{kind}" for kind in ("json", "markdown", "junit", "html")}
        write_reports(run, **{kind: str(p) for kind, p in paths.items()})
        doc = json.loads(paths["json"].read_text(encoding="utf-8"))
        assert doc == json.loads(json.dumps(run.to_dict()))
        assert [d["name"] for d in doc["derivations"]] == [r.name for r in run.reports]
        assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(run)
        ET.parse(paths["junit"])
        assert paths["html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# --- JUnit -----------------------------------------------------------------------------------------------


def test_junit_parses_with_one_testcase_per_gradient_and_the_right_counts(request):
    for run in _runs(request):
        root = ET.fromstring(render_junit(run).encode("utf-8"))
        suites = root.findall("testsuite")
        assert root.tag == "testsuites" and len(suites) == 1
        suite = suites[0]
        cases = suite.findall("testcase")
        erroring = sum(1 for r in run.reports if r.status == Status.ERROR and not r.failures)
        assert len(cases) == sum(len(r.gradients) for r in run.reports) + erroring
        failing = sum(g.status == Status.FAIL for r in run.reports for g in r.gradients)
        assert len(suite.findall("testcase/failure")) == failing
        assert len(suite.findall("testcase/error")) == erroring
        for element in (root, suite):
            assert element.get("tests") == str(len(cases))
            assert element.get("failures") == str(failing)
            assert element.get("errors") == str(erroring)
            assert element.get("skipped") == "0"
            assert float(element.get("time")) >= 0
        assert all(float(c.get("time")) >= 0 for c in cases)


def test_junit_failure_carries_the_sentence_worst_entry_and_replay_and_keeps_names_intact():
    root = ET.fromstring(render_junit(hostile_run()))
    cases = root.findall("testsuite/testcase")
    assert cases[0].get("classname") == HOSTILE and cases[0].get("name") == HOSTILE
    failure = cases[0].find("failure")
    assert "the sign is <b>flipped</b>" in failure.get("message")
    assert failure.get("type") == "sign_flip"
    assert "worst entry" in failure.text and "analytic 6, reference -6" in failure.text
    assert "replay: verigrad check 'x&y.py'" in failure.text
    assert cases[1].get("name") == "b\\x1b[31m"  # control characters are not XML: shown as escapes
    assert "2 of 12 entries" not in cases[1].find("failure").get("message")
    assert cases[1].find("failure").get("message").endswith("1 of 12 entries disagree")
    error = cases[3].find("error")
    assert error is not None and "\\x00" in error.text and "<img src=x" in error.get("message")
    assert [c.get("name") for c in cases[4:]] == ["(derivation)", "p"] and cases[4].find("error").get("message") == "timed out after 3 s"


# --- Markdown --------------------------------------------------------------------------------------------


def _unescaped_bars(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_escapes_user_text_and_keeps_the_table_intact(request):
    for run in _runs(request):
        md = render_markdown(run)
        assert "<script" not in md and "<img" not in md and "<b>" not in md
        assert md.splitlines()[0].endswith(render(run).splitlines()[-1])
        rows = [line for line in md.splitlines() if line.startswith("| ")]
        assert len(rows) == 2 + sum(len(r.gradients) or 1 for r in run.reports)
        assert all(_unescaped_bars(row) == 9 for row in rows), rows  # eight columns


def test_markdown_details_name_what_is_wrong_and_how_to_replay():
    md = render_markdown(hostile_run())
    assert "the sign is &lt;b&gt;flipped&lt;/b&gt; &amp; \"wrong\" \\| &#96;x&#96;" in md
    assert "1 of 3 entries disagree" not in md and "1 of 12 entries disagree" in md  # no diagnosis: the count
    assert "analytic `6`, reference `-6`" in md
    # A replay naming markup cannot go in a code block (no escaping there): it is shown as escaped text.
    assert "Replay: verigrad check 'x&amp;y.py' --only '&lt;script&gt;' --replay N=3,M=4,seed=7" in md
    assert "forward raised: &lt;img src=x onerror=alert(1)&gt;<br>second line \\\\x00" in md


# --- HTML ------------------------------------------------------------------------------------------------


def test_markdown_puts_a_plain_replay_command_in_a_code_block(failing_run):
    md = render_markdown(failing_run)
    blocks = re.findall(r"^(`{3,})sh\n(.*?)\n\1$", md, re.M | re.S)
    replays = [r.replay for r in failing_run.reports if r.status != Status.PASS and r.name != HOSTILE]
    assert [b[1] for b in blocks] == replays
    assert all(r.startswith("verigrad check wrong.py --only tanh_") for r in replays)


def test_html_is_self_contained_with_one_png_per_heatmap(request):
    for run in _runs(request):
        page = render_html(run)
        assert "http://" not in page and "https://" not in page
        assert "<script" not in page and "<link" not in page and "url(" not in page
        assert page.count('<img src="data:image/png;base64,') == 0  # every heatmap carries its class
        assert page.count(IMG) == sum(_drawn(g) for r in run.reports for g in r.gradients)
        for tail in page.split(IMG)[1:]:
            image = _png(tail)
            assert max(image.shape[:2]) <= MAX_PIXELS + 2


def test_html_escapes_names_messages_and_notes_a_misshapen_gradient(failing_run):
    page = render_html(hostile_run())
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27;\nü | `t`" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<b>flipped" not in page
    assert "b\\x1b[31m" in page and "\x1b" not in page and "\x00" not in page and "\x07" not in page
    misshapen = render_html(failing_run)
    assert "drawn on its own shape" in misshapen and "no difference drawn" in misshapen


def test_heatmaps_share_a_symmetric_scale_and_mark_nondifferentiable_entries():
    uri, w, h = heatmap(np.array([[1.0, -1.0]]), 1.0)
    img = _png(uri.split(",", 1)[1])
    assert (w, h) == (img.shape[1], img.shape[0]) and w == 2 * h
    left, right = img[h // 2, w // 4], img[h // 2, 3 * w // 4]
    assert left[0] > left[2] and right[2] > right[0]  # positive red, negative blue
    cmap = colormaps[COLORMAP]
    assert np.allclose(left, cmap(1.0), atol=0.01) and np.allclose(right, cmap(0.0), atol=0.01)  # ±scale: the two ends
    zero = _png(heatmap(np.array([[0.0, 2.0]]), 2.0)[0].split(",", 1)[1])
    assert np.allclose(zero[h // 2, w // 4], cmap(0.5), atol=0.01)  # zero: the middle, near white
    marked = heatmap(np.array([[1.0, -1.0]]), 1.0, mask=np.array([[True, False]]))[0]
    assert marked != uri


def test_big_arrays_are_pooled_to_a_small_image_that_keeps_the_worst_entry():
    big = np.zeros((400, 300))
    big[123, 45] = -7.0
    uri, w, h = heatmap(big, 7.0)
    assert max(w, h) <= MAX_PIXELS and len(uri) < 60_000
    img = _png(uri.split(",", 1)[1])
    assert img[..., 2].max() > 0.3 and (img[..., 0] < 0.2).any()  # the one strong blue entry survives pooling


# --- terminal --------------------------------------------------------------------------------------------


def test_terminal_ends_with_the_summary_line_ci_reads(request):
    for run in _runs(request):
        text = render(run)
        assert SUMMARY.match(text.splitlines()[-1]), text.splitlines()[-1]
        assert ANSI.sub("", render(run, color=True)) == text
    assert render(hostile_run()).splitlines()[-1] == "0 passed, 1 failed, 2 errors"


def test_terminal_says_what_is_wrong_where_and_how_to_replay_without_dumping_a_big_matrix(big_run):
    text = render(big_run)
    g = big_run.reports[0].failures[0]
    assert g.entries == 2500
    head = next(line for line in text.splitlines() if line.startswith("FAIL"))
    assert (g.diagnosis.sentence if g.diagnosis else f"{g.mismatches} of 2500 entries disagree") in head
    assert f"worst entry W[{g.worst_index[0]}, {g.worst_index[1]}]: analytic {g.analytic_value:.6g}, reference {g.reference_value:.6g}" in text
    assert "at D=50, M=50, N=3; point seed 11" in text
    assert "  replay: verigrad check wrong.py --only tanh_sign_flipped --replay D=50,M=50,N=3,seed=11" in text
    numbers = re.findall(r"-?\d+\.\d+(?:e[+-]\d+)?", text)
    assert len(numbers) < 40, len(numbers)  # a 3×3 window beside its reference, not 2500 entries
    assert len(text.splitlines()) < 30
    assert len(re.findall(r"-?\d+\.\d+", render_markdown(big_run))) < 40


def test_terminal_shows_names_as_written_with_control_characters_made_visible():
    text = render(hostile_run())
    assert "<script>alert(\"x\")</script> & 'q'" in text and "ü | `t`" in text
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text
    assert "b\\x1b[31m" in text
    assert "the sign is <b>flipped</b>" in text  # the diagnosis sentence, as written
    assert "1 of 12 entries disagree" in text  # no diagnosis: the mismatch count
    assert "worst entry" in text and "analytic 6, reference -6" in text
    assert "replay: verigrad check 'x&y.py' --only '<script>' --replay N=3,M=4,seed=7" in text
    assert "forward raised: <img src=x onerror=alert(1)>\\nsecond line \\x00" in text  # user text never starts a line
    table = text.split("\n\n", 1)[0].splitlines()
    assert len(table) == 1 + 3 + 1 + 1  # header, three gradients, one unchecked derivation, one gradient: no newline in the table
    assert "ERROR slow: timed out after 3 s" in text  # an error beside passing gradients is still said


def test_terminal_window_marks_the_worst_and_nondifferentiable_entries():
    text = render(hostile_run())
    assert "6*" in text and "-6*" in text  # the worst entry, both values
    assert "~ nondifferentiable" not in text  # [0, 0] is outside the window around [2, 3]
    assert "rows 0–2 of 3, cols 1–3 of 4" in text


# --- progress --------------------------------------------------------------------------------------------


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("tty", [True, False], ids=["tty", "log"])
def test_progress_is_silent_for_quick_runs_then_shows_the_derivation(tty):
    stream, clock = _Stream(tty), _Clock()
    p = Progress(stream, enabled=True, clock=clock)
    p.update("quick", 1, 30)
    assert stream.getvalue() == ""
    clock.now += 3
    for k in range(1, 31):
        clock.now += 0.2
        p.update("slow\x1b", k, 30)
    p.update("next", 1, 30)
    p.close()
    out = stream.getvalue()
    assert "\x1b" not in out.replace("\x1b[K", "")
    if tty:
        assert out.startswith("\rverigrad: slow\\x1b  1/30 examples") and "30/30" in out and out.endswith("\r\x1b[K")
        assert "\n" not in out
    else:
        assert out.splitlines() == [
            "verigrad: checking slow\\x1b (1/30 examples, 3 s into the run)",
            "verigrad: checking next (1/30 examples, 9 s into the run)",
        ]


def test_progress_is_off_under_pytest_and_survives_a_closed_stream():
    stream, clock = _Stream(True), _Clock()
    p = Progress(stream, clock=clock)  # PYTEST_CURRENT_TEST is set while this runs
    clock.now += 10
    p.update("x", 1, 2)
    p.close()
    assert stream.getvalue() == ""
    closed = _Stream(True)
    q = Progress(closed, enabled=True, clock=clock, delay=0)
    closed.close()
    q.update("x", 1, 2)
    q.close()
    assert q.enabled is False
