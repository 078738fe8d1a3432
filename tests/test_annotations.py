"""CI annotations (``--annotations github``): one workflow command per failing gradient, at the gradients' line."""

from __future__ import annotations

import textwrap

from verigrad.checks.cli import main
from verigrad.checks.report import Report, RunReport, Status
from verigrad.checks.report.annotations import github_annotations

FILE = """
import numpy as np
from verigrad import Derivation

def forward(xp, X, W):
    return xp.sum((X @ W) ** 2)

def wrong_gradients(X, W):
    r = 2 * (X @ W)
    return {"X": r @ W.T, "W": -(X.T @ r)}

def right_gradients(X, W):
    r = 2 * (X @ W)
    return {"X": r @ W.T, "W": X.T @ r}

def raises(xp, X, W):
    raise ValueError("no")

S = {"X": ("N", "D"), "W": ("D", "M")}
wrong = Derivation(name="wrong", shapes=S, forward=forward, gradients=wrong_gradients)
right = Derivation(name="right", shapes=S, forward=forward, gradients=right_gradients)
broken = Derivation(name="broken", shapes=S, forward=raises, gradients=right_gradients)
"""


def _line_of(text: str, needle: str) -> int:
    return next(k for k, line in enumerate(text.splitlines(), 1) if needle in line)


def test_each_failing_gradient_is_one_annotation_at_the_line_of_its_gradients(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = textwrap.dedent(FILE)
    (tmp_path / "mine.py").write_text(text)
    code = main(["check", "mine.py", "--seed", "0", "--examples", "3", "--no-database", "--annotations", "github"])
    out = capsys.readouterr().out
    assert code == 1
    commands = [line for line in out.splitlines() if line.startswith("::")]
    # ∂f/∂W's annotation is at its slip, the return statement's entry; "broken" has none: the line of its gradients.
    wrong_line, right_line = _line_of(text, '"W": -(X.T @ r)'), _line_of(text, "def right_gradients")
    assert len(commands) == 2, commands  # ∂f/∂W of "wrong", and "broken", which could not be checked
    assert commands[0].startswith(f"::error file=mine.py,line={wrong_line},title=verigrad%3A wrong ∂f/∂W is wrong::")
    assert "sign flipped" in commands[0] and "%0Areplay: verigrad check mine.py --only wrong" in commands[0]
    assert commands[1].startswith(f"::error file=mine.py,line={right_line},title=verigrad%3A broken could not be checked::")
    assert "ValueError" in commands[1]


def test_no_annotation_without_the_option_or_for_a_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(textwrap.dedent(FILE))
    main(["check", "mine.py", "--seed", "0", "--examples", "3", "--no-database"])
    assert "::error" not in capsys.readouterr().out
    assert main(["check", "mine.py", "--only", "right", "--seed", "0", "--examples", "3", "--no-database", "--annotations", "github"]) == 0
    assert "::error" not in capsys.readouterr().out


def test_messages_and_properties_are_escaped_as_github_reads_them(tmp_path):
    report = Report(
        name="a,b:c",
        status=Status.ERROR,
        message="100% wrong\nsecond line",
        location={"file": str(tmp_path / "x,y.py"), "line": 7},
    )
    (line,) = github_annotations(RunReport(reports=[report]), here=str(tmp_path))
    assert line == "::error file=x%2Cy.py,line=7,title=verigrad%3A a%2Cb%3Ac could not be checked::100%25 wrong%0Asecond line"
