"""The slip named wherever the user's backward is written: a course's ``lstm_step_backward`` kept in its own
module (beside its forward, or not), imported into the file that declares the Derivation and called there by a
wrapper, gets its wrong line named in that module. Never a line of verigrad, NumPy, torch or the standard
library (``verigrad.reference.is_user_file``)."""

from __future__ import annotations

import functools
import json
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

import verigrad.analytic._adapters
from verigrad import check
from verigrad.checks.loader import load_file
from verigrad.checks.report import Mark, RunReport
from verigrad.checks.report.terminal import render
from verigrad.reference import is_user_file

COURSE = Path(__file__).resolve().parents[1] / "examples" / "course" / "layers.py"
#: The planted mistake: ∂f/∂o takes next_c where tanh(next_c) belongs (one line of lstm_step_backward).
RIGHT, WRONG = "    do = dnext_h * tanh_c\n", "    do = dnext_h * next_c\n"

CHECK_FILE = """
from course_right import lstm_step_forward as right_forward
from course_slip import lstm_step_backward, lstm_step_forward
from verigrad import Derivation

SHAPES = {"x": ("N", "D"), "prev_h": ("N", "H"), "prev_c": ("N", "H"), "Wx": ("D", "4*H"), "Wh": ("H", "4*H"), "b": ("4*H",)}


def backward(dnext_h, dnext_c, cache):
    dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def forward(x, prev_h, prev_c, Wx, Wh, b):
    return lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)


direct = Derivation.from_forward_backward("direct", lstm_step_forward, lstm_step_backward, shapes=SHAPES, outputs=2)
wrapped = Derivation.from_forward_backward("wrapped", lstm_step_forward, backward, shapes=SHAPES, outputs=2)
both_wrapped = Derivation.from_forward_backward("both_wrapped", forward, backward, shapes=SHAPES, outputs=2)
apart = Derivation.from_forward_backward("apart", right_forward, backward, shapes=SHAPES, outputs=2)
"""


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """(the derivations of the check file, the module holding the wrong line), loaded as ``verigrad check`` would."""
    text = COURSE.read_text()
    assert text.count(RIGHT) == 1
    (tmp_path / "course_slip.py").write_text(text.replace(RIGHT, WRONG))
    (tmp_path / "course_right.py").write_text(text)  # the same forward, kept apart from the wrong backward
    (tmp_path / "check_course.py").write_text(CHECK_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield {d.name: d for d in load_file(str(tmp_path / "check_course.py"))}, tmp_path / "course_slip.py"
    finally:
        for name in ("course_slip", "course_right", "check_course"):
            sys.modules.pop(name, None)


def _line_of(path: Path, text: str) -> int:
    (k,) = [k for k, line in enumerate(path.read_text().splitlines(), 1) if line == text.rstrip("\n")]
    return k


@pytest.mark.parametrize("name", ["direct", "wrapped", "both_wrapped", "apart"])
def test_the_wrong_line_is_named_in_the_module_the_backward_comes_from(planted, name):
    derivations, module = planted
    report = check(derivations[name], replay=({"N": 2, "D": 3, "H": 2}, 7))
    failing = {g.param: g for g in report.failures}
    assert {"x", "prev_h", "Wx", "Wh", "b"} <= set(failing), report.message
    line = _line_of(module, WRONG)
    for param, g in failing.items():
        assert g.slip is not None, (param, g.slip_reason)
        assert (Path(g.slip.file).resolve(), g.slip.line) == (module.resolve(), line), g.slip.sentence
        assert "do = dnext_h * next_c" in g.slip.source
        assert any(t.mark == Mark.WRONG and t.line == line and Path(t.file).resolve() == module.resolve() for t in g.trace)
        # The trace holds the user's lines only (the modules and the check file's wrappers), never verigrad's adapter.
        users = {module.with_name(f).resolve() for f in ("course_slip.py", "course_right.py", "check_course.py")}
        assert {Path(t.file).resolve() for t in g.trace} <= users


def test_the_json_report_names_the_slip_s_own_file(planted):
    derivations, module = planted
    doc = json.loads(json.dumps(check(derivations["wrapped"], replay=({"N": 2, "D": 3, "H": 2}, 7)).to_dict()))
    slips = [g["slip"] for g in doc["gradients"] if g.get("slip")]
    assert slips and all(Path(s["file"]).resolve() == module.resolve() for s in slips)


def test_user_code_is_neither_verigrad_s_machinery_nor_a_library():
    assert not is_user_file(verigrad.analytic._adapters.__file__)  # the adapters' wrappers
    assert not is_user_file(check.__code__.co_filename)  # the checks that call the user's functions
    assert not is_user_file(np.__file__) and not is_user_file(torch.__file__)
    assert not is_user_file(functools.__file__)  # the standard library
    assert not is_user_file(os.path.join(sysconfig.get_paths()["stdlib"], "json", "decoder.py"))
    assert is_user_file(str(COURSE))
    assert is_user_file(verigrad.analytic.builtin("lstm_step").gradients.__code__.co_filename)  # a built-in derivation


@pytest.mark.parametrize("name", ["direct", "wrapped"])
def test_the_sentence_names_the_slip_s_file_where_it_is_not_the_derivation_s(planted, name):
    derivations, module = planted
    report = check(derivations[name], replay=({"N": 2, "D": 3, "H": 2}, 7))
    line = _line_of(module, WRONG)
    for g in report.failures:
        # "direct" hands course_slip's own backward to the Derivation; "wrapped" a wrapper in check_course.py
        assert g.slip.elsewhere == (name == "wrapped")
        said = f"line {line} of course_slip.py `" if name == "wrapped" else f"line {line} `"
        assert g.slip.sentence.startswith(said), g.slip.sentence
    if name == "wrapped":  # as the terminal report says it
        assert f"line {line} of course_slip.py `" in render(RunReport([report]))
