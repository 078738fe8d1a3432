"""The pytest plugin: module-level derivations of a user's test modules become items, alone or under xdist."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from verigrad.analytic import Derivation
from verigrad.checks import assert_gradients

pytest_plugins = ["pytester"]

#: Few examples: the wrong derivation is wrong at every point, and each inner run must stay quick.
FAST = ["-p", "no:cacheprovider", "--verigrad-examples", "4", "--verigrad-seed", "7"]

SQUARE = '''
import numpy as np
from verigrad.analytic import Derivation

def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)

def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}

def half(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": X.T @ r}

SHAPES = {"X": ("N", "D"), "w": ("D",)}
square = Derivation(name="square", shapes=SHAPES, forward=forward, gradients=gradients)
square_half = Derivation(name="square_half", shapes=SHAPES, forward=forward, gradients=half)

def test_ordinary():
    assert square.params == ("X", "w")
'''

#: Harness frames a failure must not show: the user's derivation is wrong, not our code.
HARNESS = ("Traceback", "checks/search/", "checks/verdict/", "checks/diagnose/", "checks/report/", "pytest_plugin.py", "DerivationFailed")


def project(pytester: pytest.Pytester, **files: str) -> None:
    pytester.makepyfile(**{name: textwrap.dedent(text) for name, text in files.items()})


def assert_failure_text(text: str) -> None:
    assert "derivation 'square_half' has a wrong gradient" in text
    assert "off by a constant factor" in text  # the diagnosis sentence
    assert "worst entry w[" in text and "analytic" in text and "reference" in text
    assert "replay: verigrad check test_square.py --only square_half --replay " in text


@pytest.fixture(autouse=True)
def _not_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


def test_right_and_wrong_derivations_become_one_item_each(pytester):
    project(pytester, test_square=SQUARE)
    result = pytester.runpytest("-v", *FAST)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*verigrad: seed 7 (--verigrad-seed*",
            "test_square.py::verigrad[[]square[]] PASSED*",
            "test_square.py::verigrad[[]square_half[]] FAILED*",
            "test_square.py::test_ordinary PASSED*",
        ]
    )
    out = result.stdout.str()
    failure = out[out.index("verigrad square_half _") :]
    assert_failure_text(failure)
    # The rerun carries the search's budget too: another number of examples is another search.
    assert "rerun: pytest 'test_square.py::verigrad[square_half]' --verigrad-seed 7 --verigrad-examples 4\n" in failure
    for frame in HARNESS:
        assert frame not in out, frame
    assert "verigrad: 1 passed, 1 failed (seed 7)" in out


@pytest.mark.parametrize(
    ("args", "kept"),
    [([], True), (["--verigrad-no-database"], False), (["--verigrad-seed", "7"], False)],
    ids=["random-seed", "no-database", "named-seed"],
)
def test_the_example_database_is_kept_only_for_a_random_seed(pytester, args, kept):
    project(pytester, test_square=SQUARE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--verigrad-examples", "4", *args)
    result.assert_outcomes(passed=2, failed=1)
    assert (pytester.path / ".hypothesis" / "verigrad").is_dir() == kept


RAISES = '''
from verigrad.analytic import Derivation

def forward(xp, x):
    raise ZeroDivisionError("the forward divides by a zero norm")

broken = Derivation(name="broken", shapes={"x": ("N",)}, forward=forward, gradients=lambda x: {"x": x})
extra = Derivation(name="extra", shapes={"x": ("N",)}, forward=lambda xp, x: xp.sum(x**2), gradients=lambda x: {"x": 2 * x, "y": x})
'''


def test_an_error_fails_in_one_line_and_a_passing_check_s_warning_reaches_pytest(pytester):
    project(pytester, test_broken=RAISES)
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(failed=1, passed=1, warnings=1)
    result.stdout.fnmatch_lines(["derivation 'broken' could not be checked", "ERROR broken: *ZeroDivisionError: the forward divides by a zero norm"])
    result.stdout.fnmatch_lines(["*DerivationWarning: extra: gradients returned unknown key(s) 'y', ignored*"])
    assert "Traceback" not in result.stdout.str()


def test_under_xdist_reports_of_both_workers_are_merged(pytester):
    project(pytester, test_square=SQUARE)
    # Two modules, so that both workers check a derivation.
    project(pytester, test_other=SQUARE.replace('"square', '"other_square').replace("def test_ordinary", "def test_ordinary_other"))
    out_json, out_junit, out_html = (pytester.path / f"report.{ext}" for ext in ("json", "xml", "html"))
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadfile", *FAST,
        f"--verigrad-json={out_json}", f"--verigrad-junit={out_junit}", f"--verigrad-html={out_html}",
        timeout=120,
    )  # fmt: skip
    result.assert_outcomes(passed=4, failed=2)
    out = result.stdout.str()
    assert_failure_text(out)
    assert "Traceback" not in out

    doc = json.loads(out_json.read_text())
    assert set(doc) >= {"version", "seed", "derivations"} and doc["version"] == 1 and doc["seed"] == 7
    names = [d["name"] for d in doc["derivations"]]
    assert sorted(names) == ["other_square", "other_square_half", "square", "square_half"]
    assert names.index("other_square") < names.index("other_square_half") and names.index("square") < names.index("square_half")
    status = {d["name"]: d["status"] for d in doc["derivations"]}
    assert status == {"square": "pass", "square_half": "fail", "other_square": "pass", "other_square_half": "fail"}
    half = next(d for d in doc["derivations"] if d["name"] == "square_half")
    assert half["replay"].startswith("verigrad check test_square.py --only square_half --replay ")

    junit = ET.parse(out_junit).getroot().iter("testcase")
    named = " ".join(f"{c.get('classname')} {c.get('name')}" for c in junit)
    for name in names:
        assert name in named
    assert "square_half" in out_html.read_text()


def test_ci_fixes_the_seed_and_the_report_records_it(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    project(pytester, test_square=SQUARE)
    report = pytester.path / "r.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "--verigrad-examples", "4", f"--verigrad-json={report}")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*verigrad: seed 0 (CI*"])
    doc = json.loads(report.read_text())
    assert doc["seed"] == 0 and len(doc["derivations"]) == 2
    assert "run seed 0" in result.stdout.str()


IMPORTS = '''
from verigrad.analytic import builtin
from test_square import square_half
from test_square import square as renamed

RELU = builtin("relu_regression")
again = renamed

def test_nothing_here():
    pass
'''


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        pytest.param({"test_square": SQUARE + "\n__verigrad__ = False\n"}, FAST, {"passed": 1}, id="module-opt-out"),
        pytest.param({"test_square": SQUARE}, [*FAST, "-o", "verigrad_collect=false"], {"passed": 1}, id="ini-opt-out"),
        pytest.param({"test_square": SQUARE}, ["-p", "no:cacheprovider", "-p", "no:verigrad"], {"passed": 1}, id="plugin-off"),
        pytest.param({"test_square": SQUARE, "test_imports": IMPORTS}, FAST, {"passed": 3, "failed": 1}, id="imported-not-collected"),
        pytest.param({"helper_square": SQUARE}, FAST, {}, id="not-a-test-module"),
    ],
)
def test_what_is_not_collected(pytester, files, args, expected):
    project(pytester, **files)
    result = pytester.runpytest("--collect-only", "-q", *args)
    derivations = [line for line in result.stdout.lines if "::verigrad[" in line]
    if files.get("test_imports"):
        assert derivations == ["test_square.py::verigrad[square]", "test_square.py::verigrad[square_half]"]
    else:
        assert derivations == []
    result = pytester.runpytest(*args)
    result.assert_outcomes(**expected)


def test_the_same_derivation_under_two_names_is_one_item(pytester):
    project(pytester, test_square=SQUARE + "\nalias = square\n")
    result = pytester.runpytest("--collect-only", "-q", *FAST)
    collected = [line for line in result.stdout.lines if "::verigrad[" in line]
    assert collected == ["test_square.py::verigrad[square]", "test_square.py::verigrad[square_half]"]


def _forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


SHAPES = {"X": ("N", "D"), "w": ("D",)}
RIGHT = Derivation(name="square", shapes=SHAPES, forward=_forward, gradients=lambda X, w: {"X": 2 * np.outer(X @ w, w), "w": 2 * X.T @ (X @ w)})
WRONG = Derivation(name="square_half", shapes=SHAPES, forward=_forward, gradients=lambda X, w: {"X": 2 * np.outer(X @ w, w), "w": X.T @ (X @ w)})
# This module's own derivations are fixtures of these tests, not items.
__verigrad__ = False


def test_assert_gradients_raises_with_the_failure_text():
    assert assert_gradients(RIGHT, examples=4, seed=7, database=False).passed
    with pytest.raises(AssertionError) as raised:
        assert_gradients(WRONG, examples=4, seed=7, database=False, target="test_square.py")
    assert_failure_text(str(raised.value))
    assert "run seed 7" in str(raised.value)
