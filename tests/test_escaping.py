"""No text of the user's can start, end or steer a printed line: a derivation's name, its exception text, a target's
path, whatever reaches the terminal table, the details, the warnings, the command's own messages and the CI
annotations is shown with every line-ending and terminal-steering character as an escape. The structured reports
(JSON, JUnit) keep names as they are, JUnit as valid XML."""

from __future__ import annotations

import contextlib
import io
import textwrap
import xml.etree.ElementTree as ET

import pytest

from verigrad.checks.assertion import failure_text
from verigrad.checks.cli import main
from verigrad.checks.report import Report, RunReport, Status, render, visible
from verigrad.checks.report.annotations import github_annotations
from verigrad.checks.report.junit import render_junit

#: Every kind of character that can end a line or steer a terminal: LF, CR, VT, FF, ESC (a CSI sequence), BEL,
#: DEL, NUL, NEL (U+0085), CSI (U+009B), the line and paragraph separators, bidirectional overrides and isolates.
STEERING = "\n\r\x0b\x0c\x1b\x07\x7f\x00\x85\x9b\u2028\u2029\u202e\u2066\u200f\u061c"
#: A name that, printed as it is, makes GitHub Actions read a workflow command and a reader a passing line.
EVIL = "ok\n::warning file=x.py::planted\nPASS ok  X  PASS\r\x1b[2K\u2028\u0085\u202eevil"

FILE = f"""
import numpy as np
from verigrad import Derivation

def forward(xp, X):
    return xp.sum(X ** 2)

def wrong(X):
    return {{"X": -2 * X}}

def raises(xp, X):
    raise ValueError({EVIL!r})

wrong_one = Derivation(name={EVIL!r}, shapes={{"X": ("N",)}}, forward=forward, gradients=wrong, dims={{"N": (1, 2)}})
broken = Derivation(name="broken", shapes={{"X": ("N",)}}, forward=raises, gradients=wrong, dims={{"N": (1, 2)}})
"""
RAISES_ON_IMPORT = f"raise RuntimeError({EVIL!r})\n"


def _raw(text: str) -> set[str]:
    """The steering characters ``text`` holds, a newline between lines aside."""
    return {c for c in STEERING if c != "\n" and c in text}


@pytest.mark.parametrize("c", list(STEERING), ids=[f"U+{ord(c):04X}" for c in STEERING])
def test_visible_shows_every_steering_character_as_an_escape_and_again_changes_nothing(c):
    once = visible(f"a{c}b", newline=False)
    assert c not in once and once.isprintable() and visible(once, newline=False) == once


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One run of the command on a file with a planted name and exception text, and a file that raises on import."""
    here = tmp_path_factory.mktemp("escape")
    (here / "evil.py").write_text(textwrap.dedent(FILE))
    (here / "boom.py").write_text(RAISES_ON_IMPORT)
    capture = pytest.MonkeyPatch()
    capture.chdir(here)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", "evil.py", "boom.py", "--seed", "0", "--examples", "2", "--no-database", "--no-color", "--annotations", "github"])
    finally:
        capture.undo()
    return code, out.getvalue(), err.getvalue()


def test_no_printed_line_of_the_command_is_a_workflow_command_or_a_line_of_the_user_s(cli_run):
    code, out, err = cli_run
    assert code == 1, out + err
    assert not _raw(out) and not _raw(err), (_raw(out), _raw(err))
    for line in (out + err).splitlines():
        if line.startswith("::error "):
            continue  # the annotations asked for: escaped by GitHub's rules below
        assert not line.lstrip().startswith("::"), line  # the runner reads a command after leading blanks too
        assert not line.startswith("PASS"), line
    assert "ok\\n::warning file=x.py::planted\\nPASS ok  X  PASS\\r\\x1b[2K\\u2028\\x85\\u202eevil" in out
    (load_error,) = err.splitlines()  # the file that raised on import: one line, with the exception's text
    assert load_error.startswith("verigrad: boom.py: ") and "planted" in load_error
    annotations = [line for line in out.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 3, annotations  # the wrong gradient, the forward that raised, the file that did not load
    for line in annotations:
        props = line[len("::error ") : line.index("::", 2)]  # the properties end at the first '::'
        assert ":" not in props, props
    assert any("title=verigrad%3A ok%0A%3A%3Awarning file=x.py%3A%3Aplanted%0APASS" in line for line in annotations)


def test_annotations_escape_the_title_s_and_message_s_controls():
    report = Report(name=EVIL, status=Status.ERROR, message=EVIL, location={"file": "/x/a\rb.py", "line": 3})
    (line,) = github_annotations(RunReport(reports=[report]), here="/x")
    assert not _raw(line) and "\n" not in line
    assert line.startswith("::error file=a\\rb.py,line=3,title=verigrad%3A ok%0A%3A%3Awarning file=x.py%3A%3Aplanted%0APASS ok")
    assert "::ok%0A::warning file=x.py::planted%0APASS ok  X  PASS\\r\\x1b[2K\\u2028\\x85\\u202eevil" in line


def test_the_terminal_report_and_the_assertion_text_hold_no_line_of_the_user_s():
    report = Report(name=EVIL, status=Status.ERROR, message=f"forward raised: {EVIL}")
    for text in (render(RunReport([report], seed=1)), render(RunReport([report], seed=1), color=True)):
        assert not _raw(text.replace("\x1b[", "")) and not any(line.startswith(("::", "PASS")) for line in text.splitlines())
    said = failure_text(report)
    assert not _raw(said) and len(said.splitlines()) == 2


def test_junit_keeps_names_as_written_where_xml_can_hold_them_and_stays_valid_xml():
    report = Report(name="a\x01b\x1b[31m\ufffe\u2028c", status=Status.ERROR, message="raised\x00 here\x0b")
    root = ET.fromstring(render_junit(RunReport([report], seed=1)))
    (case,) = root.iter("testcase")
    assert case.get("classname") == "a\\x01b\\x1b[31m\\ufffe\\u2028c"
