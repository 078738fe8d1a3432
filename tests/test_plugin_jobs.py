"""The pytest plugin checks derivation items side by side (``--verigrad-jobs``, default one per core): when pytest
reaches an item, the checks of the items that follow it in a row start too, each in its own worker; each item
reports its own outcome in pytest's order, and Ctrl-C stops them all, their workers gone."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from .test_plugin_reports import FAST, project, run

pytest_plugins = ["pytester"]

#: Seconds a forward waits for the other one to start: long enough for a busy machine, short for a failing test.
MEET = 30

#: Two derivations whose forwards each wait for the other's to have started: both pass only side by side.
MEETING = f"""
import time
from pathlib import Path

def meets(name, other):
    here = Path(__file__).with_name(name + ".started")

    def forward(xp, x):
        here.touch()
        deadline = time.monotonic() + {MEET}
        while not here.with_name(other + ".started").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{{other}} never ran beside {{name}}")
            time.sleep(0.01)
        return xp.sum(x ** 2)

    return Derivation(name=name, shapes=S, forward=forward, gradients=lambda x: {{"x": 2 * x}})

first = meets("first", "second")
second = meets("second", "first")
wrong_one = wrong("wrong_one")
third = right("third")
"""


def test_items_in_a_row_are_checked_side_by_side_each_reporting_its_own_outcome(pytester):
    project(pytester, test_meeting=MEETING)
    result, reports = run(pytester, *FAST, "--verigrad-jobs", "2")
    result.assert_outcomes(passed=3, failed=1)
    assert reports.entries == [("first", "pass"), ("second", "pass"), ("wrong_one", "fail"), ("third", "pass")]
    failed = [r.nodeid for r in result.reprec.getreports("pytest_runtest_logreport") if r.failed]
    assert failed == ["test_meeting.py::verigrad[wrong_one]"]


STOPPED = """
import os, signal, time
from pathlib import Path

def waits(name, interrupts):
    pids = Path(__file__).with_name(name + ".pids")  # the worker's and the fork server's: its check has started

    def forward(xp, x):
        if not pids.exists():
            pids.write_text(f"{os.getpid()} {os.getppid()}")
        others = list(pids.parent.glob("*.pids"))
        if interrupts and len(others) == 2:  # both checks are running: Ctrl-C to pytest
            os.kill(int(os.environ["VERIGRAD_TEST_PYTEST_PID"]), signal.SIGINT)
        time.sleep(120 if len(others) == 2 else 0.01)
        return xp.sum(x ** 2)

    return Derivation(name=name, shapes=S, forward=forward, gradients=lambda x: {"x": 2 * x})

first = waits("first", False)
second = waits("second", True)
never = right("never")
"""


def _gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def test_ctrl_c_stops_the_checks_side_by_side_and_leaves_no_worker(pytester):
    project(pytester, test_stopped=STOPPED, conftest='import os\nos.environ["VERIGRAD_TEST_PYTEST_PID"] = str(os.getpid())\n')
    result, reports = run(pytester, *FAST, "--verigrad-jobs", "2", subprocess=True)
    pids = {int(p) for f in pytester.path.glob("*.pids") for p in f.read_text().split()}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(map(_gone, pids)):
        time.sleep(0.05)
    left = [p for p in pids if not _gone(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert len(pids) == 3  # two workers side by side, and their fork server
    assert left == []
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert reports.doc["interrupted"] is True
    assert dict(reports.entries) == {"first": "error", "second": "error", "never": "error"}


def test_jobs_must_be_a_positive_count(pytester):
    project(pytester, test_meeting=MEETING)
    result = pytester.runpytest("--verigrad-jobs", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--verigrad-jobs*"])
