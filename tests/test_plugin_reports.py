"""The pytest plugin's report files are complete and true, whatever happens to the session.

Every collected derivation item is in every report (JSON, JUnit, Markdown, HTML) with its true status: two
derivations of the same name are two entries; one whose check raised, whose setup or teardown failed, whose
xdist worker crashed or that never ran is an error; a skipped one is a ``skip`` entry; a module that failed to
collect is an error entry; and a session that failed never leaves all-green reports behind.
"""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from verigrad.checks.report.markdown import escape

pytest_plugins = ["pytester"]

#: Few examples and a fixed seed: the wrong derivations are wrong at every point, and each inner run stays quick.
FAST = ["-p", "no:cacheprovider", "--verigrad-examples", "2", "--verigrad-seed", "3", "--verigrad-no-database"]
#: Under xdist: as FAST, in two workers; xdist's own crash handling is what is tested, so no restarts beyond its own.
XDIST = ["-n", "2", *FAST]

HEADER = """
import os
import sys
from verigrad.analytic import Derivation

S = {"x": ("N",)}

def square(xp, x):
    return xp.sum(x ** 2)

def right(name):
    return Derivation(name=name, shapes=S, forward=square, gradients=lambda x: {"x": 2 * x})

def wrong(name):
    return Derivation(name=name, shapes=S, forward=square, gradients=lambda x: {"x": 3 * x})

def hostile(name, act):
    def forward(xp, x):
        act()
        return xp.sum(x ** 2)
    return Derivation(name=name, shapes=S, forward=forward, gradients=lambda x: {"x": 2 * x})
"""


@pytest.fixture(autouse=True)
def _not_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


def project(pytester: pytest.Pytester, **modules: str) -> None:
    """Test modules of derivations (``HEADER`` prepended; a name starting with ``conftest`` is taken as it is)."""
    for name, body in modules.items():
        text = textwrap.dedent(body)
        pytester.makepyfile(**{name: text if name.startswith("conftest") else HEADER + text})


@dataclass
class Reports:
    """The four report files of one run, read back."""

    doc: dict
    junit: ET.Element
    markdown: str
    html: str

    @property
    def entries(self) -> list[tuple[str, str]]:
        return [(d["name"], d["status"]) for d in self.doc["derivations"]]

    def message(self, name: str) -> str:
        return next(d["message"] for d in self.doc["derivations"] if d["name"] == name) or ""

    def tally(self) -> dict[str, int]:
        return {k: int(self.junit.get(k)) for k in ("tests", "failures", "errors")}


PATHS = {"json": "r.json", "junit": "r.xml", "markdown": "r.md", "html": "r.html"}


def run(pytester: pytest.Pytester, *args: str, subprocess: bool = False) -> tuple[pytest.RunResult, Reports]:
    """Run pytest in the project with every report requested; read the reports back (all four must be written)."""
    options = [f"--verigrad-{kind}={pytester.path / name}" for kind, name in PATHS.items()]
    if subprocess:
        result = pytester.runpytest_subprocess(*args, *options, timeout=180)
    else:
        result = pytester.runpytest(*args, *options)
    read = {kind: (pytester.path / name).read_text(encoding="utf-8") for kind, name in PATHS.items()}
    reports = Reports(json.loads(read["json"]), ET.fromstring(read["junit"]), read["markdown"], read["html"])
    for d in reports.doc["derivations"]:  # every view lists every entry
        name = d["name"]
        assert escape(name) in reports.markdown and name in reports.html, name
        assert any(case.get("classname") == junit_class(d) for case in reports.junit.iter("testcase")), name
    return result, reports


def junit_class(entry: dict) -> str:
    """A JUnit testcase's classname: the module's dotted path and the variable bound to the derivation (or the
    item's name, where only its node id is known); an entry without a node id of an item goes by its name."""
    path, sep, last = (entry["node_id"] or "").partition("::")
    if not sep:
        return entry["name"]
    return path.removesuffix(".py").replace("/", ".") + "." + (entry["binding"] or last)


def assert_not_green(result: pytest.RunResult, reports: Reports) -> None:
    """A failed session's reports say so in every view (the JSON, JUnit's counts, the Markdown's headline)."""
    assert result.ret != 0
    assert any(status != "pass" for _, status in reports.entries), reports.entries
    tally = reports.tally()
    assert tally["failures"] + tally["errors"] > 0, tally
    assert "✅" not in reports.markdown.splitlines()[0]


# --- 1. results by node id ------------------------------------------------------------------------------

SAME_NAME = """
first = wrong("sq")
second = right("sq")
"""


def test_two_derivations_of_one_name_are_two_entries(pytester):
    """In one module (the first wrong) and in another module: three entries, the wrong one failing in each view."""
    project(pytester, test_a=SAME_NAME, test_b="only = right('sq')\n")
    result, reports = run(pytester, "-v", *FAST)
    result.assert_outcomes(passed=2, failed=1)
    assert sorted(reports.entries) == [("sq", "fail"), ("sq", "pass"), ("sq", "pass")]
    assert reports.tally() == {"tests": 3, "failures": 1, "errors": 0}
    replays = sorted(d["replay"].split(" --only")[0] for d in reports.doc["derivations"])
    assert replays == ["verigrad check test_a.py"] * 2 + ["verigrad check test_b.py"]
    assert reports.markdown.count("| ❌ fail | sq |") == 1 and reports.markdown.count("| ✅ pass | sq |") == 2
    # Each item has a node id of its own, so neither hides the other (the second is named by its variable).
    result.stdout.fnmatch_lines(["test_a.py::verigrad[[]sq[]] FAILED*", "test_a.py::verigrad[[]sq@second[]] PASSED*"])


SKIPPED = """
import pytest

pytestmark = pytest.mark.skip(reason="not today")
later = wrong("later")
"""


def test_entries_carry_node_ids_skipped_items_are_entries_and_junit_tells_same_names_apart(pytester):
    project(pytester, test_a=SAME_NAME, test_c=SKIPPED)
    result, reports = run(pytester, *FAST)
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    ids = [(d["node_id"], d["binding"], d["status"]) for d in reports.doc["derivations"]]
    assert ids == [
        ("test_a.py::verigrad[sq]", "first", "fail"),
        ("test_a.py::verigrad[sq@second]", "second", "pass"),
        ("test_c.py::verigrad[later]", "later", "skip"),
    ]
    assert "not today" in reports.message("later")
    cases = {(c.get("classname"), c.get("name")): c for c in reports.junit.iter("testcase")}
    assert {("test_a.first", "sq[x]"), ("test_a.second", "sq[x]")} <= set(cases)
    assert cases[("test_c.later", "later")].find("skipped") is not None
    assert reports.junit.get("skipped") == "1" and reports.tally() == {"tests": 3, "failures": 1, "errors": 0}
    assert "⏭️ skip | later" in reports.markdown

    pytester.path.joinpath("test_a.py").unlink()  # nothing but the skipped item: no failure, no error, and no pass
    result, reports = run(pytester, *FAST)
    assert result.ret == 0 and reports.entries == [("later", "skip")]
    headline = reports.markdown.splitlines()[0]
    assert "⏭️ verigrad: 0 passed, 0 failed, 1 skipped" in headline, headline


# --- 2. an exception escaping the check -----------------------------------------------------------------

ESCAPING = """
class Stop(BaseException):
    pass

def stop():
    raise Stop("user code stops the world")

def leave():
    sys.exit(0)

def leave_saying():
    sys.exit("bye")

stops = hostile("stops", stop)
exits = hostile("exits", leave)
says_bye = hostile("says_bye", leave_saying)
harness = right("harness")
setup_fails = right("setup_fails")
teardown_fails = right("teardown_fails")
good = right("good")
"""

CONFTEST = """
import pytest

def _named(item):
    derivation = getattr(item, "derivation", None)
    return derivation.name if derivation is not None else None

@pytest.hookimpl(trylast=True)  # after pytest's own setup, so that its teardown follows
def pytest_runtest_setup(item):
    if _named(item) == "harness":  # the harness itself breaks, not the user's code
        def broken():
            raise RuntimeError("the harness broke")
        item._check = broken
    if _named(item) == "setup_fails":
        raise RuntimeError("setup broke")

@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    if _named(item) == "teardown_fails":
        raise RuntimeError("teardown broke")
"""


def test_what_escapes_the_check_is_an_error_entry(pytester):
    project(pytester, test_escaping=ESCAPING, conftest=CONFTEST)
    result, reports = run(pytester, *FAST)
    assert_not_green(result, reports)
    status = dict(reports.entries)
    assert status == {
        "stops": "error",
        "exits": "error",
        "says_bye": "error",
        "harness": "error",
        "setup_fails": "error",
        "teardown_fails": "error",
        "good": "pass",
    }
    assert "RuntimeError: the harness broke" in reports.message("harness")
    assert reports.message("setup_fails") == "setup failed: RuntimeError: setup broke"
    assert reports.message("teardown_fails") == "teardown failed: RuntimeError: teardown broke"
    assert "Stop" in reports.message("stops")
    assert reports.tally()["errors"] == 6


def test_a_passing_check_whose_warning_is_made_an_error_is_not_a_pass(pytester):
    body = "extra = Derivation(name='extra', shapes=S, forward=square, gradients=lambda x: {'x': 2 * x, 'y': x})\n"
    project(pytester, test_warns=body)
    result, reports = run(pytester, *FAST, "-W", "error::verigrad.checks.pytest_plugin.DerivationWarning")
    result.assert_outcomes(failed=1)
    assert reports.entries == [("extra", "error")]
    assert "DerivationWarning" in reports.message("extra")


def test_pytest_exit_with_status_0_from_user_code_is_not_a_green_run(pytester):
    body = """
    import pytest
    first = right("first")
    quits = hostile("quits", lambda: pytest.exit("all done", returncode=0))
    after = right("after")
    """
    project(pytester, test_quits=body)
    result, reports = run(pytester, *FAST)
    assert_not_green(result, reports)
    status = dict(reports.entries)
    assert status["first"] == "pass" and status["quits"] == "error"
    assert set(status) == {"first", "quits", "after"}  # one that never ran is an error, not missing


# --- 3. xdist: a worker that crashes ----------------------------------------------------------------------

CRASHING = """
def crash():
    os._exit(1)

a_good = right("a_good")
crashes = hostile("crashes", crash)
b_good = right("b_good")
c_wrong = wrong("c_wrong")
"""

#: The harness's own process dies while checking one item: xdist's crash path, whoever runs the user's code.
CRASH_CONFTEST = """
import os

def pytest_runtest_call(item):
    if getattr(getattr(item, "derivation", None), "name", None) == "harness_crash":
        os._exit(3)
"""


def test_under_xdist_crashed_workers_duplicate_names_and_collection_errors(pytester):
    """One xdist run (each is slow to start) with every hostile case the controller must see through."""
    project(
        pytester,
        test_crashing=CRASHING,
        test_other="d_good = right('d_good')\nharness_crash = right('harness_crash')\ne_good = right('e_good')\n",
        test_same=SAME_NAME,
        test_same_too="only = right('sq')\n",
        conftest=CRASH_CONFTEST,
    )
    (pytester.path / "test_syntax.py").write_text("def broken(:\n    pass\n", encoding="utf-8")
    result, reports = run(pytester, *XDIST, subprocess=True)
    assert_not_green(result, reports)
    status = [(name, status) for name, status in reports.entries if name != "sq"]
    assert status == [
        ("test_syntax.py", "error"),
        ("a_good", "pass"),
        ("crashes", "error"),
        ("b_good", "pass"),
        ("c_wrong", "fail"),
        ("d_good", "pass"),
        ("harness_crash", "error"),
        ("e_good", "pass"),
    ]
    assert "crashed" in reports.message("harness_crash")
    assert reports.message("test_syntax.py").startswith("could not be collected: SyntaxError")
    assert [s for name, s in reports.entries if name == "sq"] == ["fail", "pass", "pass"]
    tally = reports.tally()
    assert tally["tests"] == len(reports.entries) and tally["failures"] == 2 and tally["errors"] >= 3, tally


def test_items_no_worker_ran_are_errors(pytester):
    """With no worker left to run them, the items still waiting are in the reports as errors."""
    project(pytester, test_first="harness_crash = right('harness_crash')\nlater = right('later')\nlast = wrong('last')\n", conftest=CRASH_CONFTEST)
    result, reports = run(pytester, "-n", "1", "--max-worker-restart", "0", *FAST, subprocess=True)
    assert_not_green(result, reports)
    assert [name for name, _ in reports.entries] == ["harness_crash", "later", "last"]
    assert all(status == "error" for _, status in reports.entries), reports.entries


# --- 4. collection errors ---------------------------------------------------------------------------------------


def test_a_module_that_fails_to_collect_is_an_error_entry(pytester):
    project(pytester, test_good="good = right('good')\n")
    (pytester.path / "test_syntax.py").write_text("def broken(:\n    pass\n", encoding="utf-8")
    (pytester.path / "test_raises.py").write_text("raise LookupError('no such table')\n", encoding="utf-8")
    result, reports = run(pytester, *FAST)
    assert_not_green(result, reports)
    status = dict(reports.entries)
    assert status["test_syntax.py"] == "error" and status["test_raises.py"] == "error"
    assert reports.message("test_syntax.py").startswith("could not be collected: SyntaxError")
    assert reports.message("test_raises.py") == "could not be collected: LookupError: no such table"
    # pytest stops at collection errors: the good derivation never ran, and is listed as such.
    assert status["good"] == "error"


def test_collection_errors_beside_derivations_that_ran(pytester):
    project(pytester, test_good="good = right('good')\n")
    (pytester.path / "test_syntax.py").write_text("def broken(:\n    pass\n", encoding="utf-8")
    result, reports = run(pytester, *FAST, "--continue-on-collection-errors")
    assert_not_green(result, reports)
    assert dict(reports.entries) == {"test_syntax.py": "error", "good": "pass"}


# --- 5. a session that failed for other reasons ------------------------------------------------------------------

ORDINARY_FIRST = """
def test_ordinary_fails():
    assert 1 == 2

good = right("good")
"""


def test_a_failing_ordinary_test_leaves_the_derivations_verdicts_true(pytester):
    project(pytester, test_mixed=ORDINARY_FIRST)
    result, reports = run(pytester, *FAST)
    result.assert_outcomes(passed=1, failed=1)
    assert reports.entries == [("good", "pass")]  # nothing invented


def test_a_derivation_the_session_stopped_before_is_an_error(pytester):
    project(pytester, test_mixed=ORDINARY_FIRST)
    result, reports = run(pytester, *FAST, "-x")
    assert_not_green(result, reports)
    assert reports.entries == [("good", "error")]
    assert "ended before" in reports.message("good")


def test_ctrl_c_during_a_check_leaves_reports_that_say_so(pytester):
    """A real Ctrl-C (SIGINT to the pytest process) while a derivation is being checked in its worker."""
    conftest = """
    import os

    os.environ["VERIGRAD_TEST_PYTEST_PID"] = str(os.getpid())
    """
    body = """
    import os, signal, time

    def interrupt():
        os.kill(int(os.environ["VERIGRAD_TEST_PYTEST_PID"]), signal.SIGINT)
        time.sleep(60)

    first = right("first")
    stopped = hostile("stopped", interrupt)
    never = right("never")
    """
    project(pytester, test_interrupted=body, conftest=conftest)
    result, reports = run(pytester, *FAST, "--verigrad-jobs", "1", subprocess=True)  # first's check ends before stopped's starts
    assert_not_green(result, reports)
    status = dict(reports.entries)
    assert status["first"] == "pass" and status["stopped"] == "error" and status["never"] == "error"
    assert reports.doc["interrupted"] is True


def test_a_keyboard_interrupt_raised_by_user_code_is_that_derivation_s_error_and_the_others_go_on(pytester):
    body = """
    def interrupt():
        raise KeyboardInterrupt

    first = right("first")
    stopped = hostile("stopped", interrupt)
    after = right("after")
    """
    project(pytester, test_raises=body)
    result, reports = run(pytester, *FAST, subprocess=True)
    assert_not_green(result, reports)
    assert dict(reports.entries) == {"first": "pass", "stopped": "error", "after": "pass"}
    assert "KeyboardInterrupt" in reports.message("stopped")


def test_a_skipped_derivation_is_a_skip_entry_and_a_deselected_one_is_not_listed(pytester):
    conftest = """
    import pytest

    def pytest_runtest_setup(item):
        if getattr(getattr(item, "derivation", None), "name", None) == "skipped":
            pytest.skip("not today")
    """
    project(pytester, test_some="kept = right('kept')\nskipped = right('skipped')\nother = right('other')\n", conftest=conftest)
    result, reports = run(pytester, *FAST, "-k", "not other")
    result.assert_outcomes(passed=1, skipped=1, deselected=1)
    assert result.ret == 0
    assert reports.entries == [("kept", "pass"), ("skipped", "skip")]
    assert reports.message("skipped") == "not today"


def test_reports_are_written_for_a_green_run_and_every_view_agrees(pytester):
    project(pytester, test_good="one = right('one')\ntwo = right('two')\n")
    result, reports = run(pytester, *FAST)
    assert result.ret == 0
    assert reports.entries == [("one", "pass"), ("two", "pass")]
    assert reports.tally() == {"tests": 2, "failures": 0, "errors": 0}
    assert reports.doc["interrupted"] is False
    assert Path(pytester.path / "r.html").stat().st_size > 0


def test_a_report_that_cannot_be_written_is_one_line_and_the_others_are_written(pytester):
    """The JSON path turns into a folder while the session runs (after any check of the paths): one line, exit not 0."""
    conftest = """
    import os

    def pytest_collection_finish(session):
        os.mkdir("late.json")
    """
    project(pytester, test_good="one = right('one')\n", conftest=conftest)
    markdown = pytester.path / "late.md"
    result = pytester.runpytest(*FAST, "--verigrad-json=late.json", f"--verigrad-markdown={markdown}")
    assert result.ret != 0
    said = [line for line in result.stdout.lines + result.stderr.lines if "late.json" in line]
    assert len(said) == 1 and said[0].startswith("verigrad: "), said
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "one" in markdown.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--verigrad-json=out"], "--verigrad-json out: is a directory"),
        (["--verigrad-json=same.txt", "--verigrad-markdown=same.txt"], "--verigrad-markdown same.txt: the same file as --verigrad-json"),
        (["--verigrad-html=test_good.py", "test_good.py"], "--verigrad-html test_good.py: is a file being checked"),
    ],
    ids=["directory", "same-file-twice", "the-test-file"],
)
def test_a_bad_report_path_is_a_usage_error_before_anything_runs(pytester, options, said):
    project(pytester, test_good="one = right('one')\n")
    (pytester.path / "out").mkdir()
    before = (pytester.path / "test_good.py").read_text(encoding="utf-8")
    result = pytester.runpytest(*FAST, *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and said in errors[0], errors
    assert (pytester.path / "test_good.py").read_text(encoding="utf-8") == before
    assert not (pytester.path / "same.txt").exists()
