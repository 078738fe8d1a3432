"""The line between the verdict process and its workers: only plain data crosses it, and no process of the
user's outlives its job or the run, however the run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from verigrad.checks import cli
from verigrad.checks.runner import report_of
from verigrad.checks.workers import Job, run_job

#: Seconds a run of one or two small derivations may take on a busy machine before the test calls it a hang.
RUN_LIMIT = 120
#: Seconds a run may take to stop once told to (write its reports and exit).
STOP_LIMIT = 60
#: Seconds a process may take to disappear once its run ended or its parent died.
GONE_LIMIT = 10


def _check(*argv: str) -> int:
    return cli.main(["check", "--seed", "0", "--examples", "2", "--no-database", "--no-color", *argv])


def _gone(pid: int) -> bool:
    """No such process, or a zombie waiting for a reaper that is not ours."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status


def _wait_gone(pids: list[int], limit: float = GONE_LIMIT) -> list[int]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not all(map(_gone, pids)):
        time.sleep(0.05)
    return [p for p in pids if not _gone(p)]


def _kill_left(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- plain data, both ways --------------------------------------------------------------------------

STRENUM_LOCAL = """
import enum
from verigrad import Derivation

class Names(enum.StrEnum):
    SQUARE = "square"

square = Derivation(name=Names.SQUARE, shapes={"X": ("N",)}, forward=lambda xp, X: xp.sum(X ** 2), gradients=lambda X: {"X": 2 * X})
"""

HELPER = """
import enum, os
from pathlib import Path

Path(__file__).with_suffix(".imported-by").open("a").write(f"{os.getpid()}\\n")

class Names(enum.StrEnum):
    CUBE = "cube"
"""

STRENUM_HELPER = """
from helper_names_for_verigrad import Names
from verigrad import Derivation

cube = Derivation(name=Names.CUBE, shapes={"X": ("N",)}, forward=lambda xp, X: xp.sum(X ** 3), gradients=lambda X: {"X": 3 * X ** 2})
"""


def test_a_derivation_named_by_a_strenum_of_its_file_is_checked(tmp_path, capsys):
    (tmp_path / "named.py").write_text(STRENUM_LOCAL)
    code = _check(str(tmp_path / "named.py"), "--json", str(tmp_path / "r.json"))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 0, out + err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [(d["name"], d["status"]) for d in doc["derivations"]] == [("square", "pass")]


def test_the_verdict_process_never_imports_the_module_a_name_comes_from(tmp_path, capsys, monkeypatch):
    (tmp_path / "helper_names_for_verigrad.py").write_text(HELPER)
    (tmp_path / "named.py").write_text(STRENUM_HELPER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # importable from here: the parent could import it if it tried
    code = _check("named.py", "relu_regression", "--json", "r.json")
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 0, out + err
    assert "helper_names_for_verigrad" not in sys.modules
    importers = {int(line) for line in (tmp_path / "helper_names_for_verigrad.imported-by").read_text().split()}
    assert importers and os.getpid() not in importers
    doc = json.loads((tmp_path / "r.json").read_text())
    assert {d["name"]: d["status"] for d in doc["derivations"]} == {"cube": "pass", "relu_regression": "pass"}


def test_a_job_answers_in_plain_data_only(tmp_path, monkeypatch):
    """Every message is read back with globals refused but numpy's arrays: nothing of the user's crosses."""
    (tmp_path / "helper_names_for_verigrad.py").write_text(HELPER)
    (tmp_path / "named.py").write_text(STRENUM_HELPER)
    monkeypatch.chdir(tmp_path)
    options = {"seed": 0, "examples": 2, "database": False}
    outcome = run_job(Job(target="named.py", index=0, expect="cube", options=options, cwd=str(tmp_path)), RUN_LIMIT)
    assert outcome.problem is None
    report = report_of(outcome, "cube", "named.py", 0)
    assert type(report.name) is str and report.name == "cube" and report.passed
    assert all(type(g.param) is str for g in report.gradients)
    assert isinstance(report.gradients[0].analytic, np.ndarray)
    assert "helper_names_for_verigrad" not in sys.modules


def test_a_message_naming_any_other_global_is_refused():
    import pickle

    from verigrad.checks.workers import read_message

    with pytest.raises(pickle.UnpicklingError):
        read_message(pickle.dumps(("report", Path("made/by/a/class"))))
    with pytest.raises(pickle.UnpicklingError):
        read_message(pickle.dumps(("report", os.system)))
    assert read_message(pickle.dumps(("report", {"a": np.arange(3.0), "b": [True, None, 1]})))[1]["b"] == [True, None, 1]


TENSOR = """
import torch
from verigrad import Derivation

def gradients(X, w):
    r = X @ w
    # Right values in a tensor that still requires grad (computed by autograd itself, say).
    return {"X": 2 * torch.outer(torch.tensor(r), torch.tensor(w)).requires_grad_(), "w": torch.tensor(2 * X.T @ r, requires_grad=True)}

tensors = Derivation(name="tensors", shapes={"X": ("N", "D"), "w": ("D",)}, forward=lambda xp, X, w: xp.sum((X @ w) ** 2), gradients=gradients)
"""


def test_a_gradient_in_a_tensor_that_requires_grad_is_read_detached(tmp_path, capsys):
    (tmp_path / "tensors.py").write_text(TENSOR)
    code = _check(str(tmp_path / "tensors.py"))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 0, out + err


# --- processes --------------------------------------------------------------------------------------

POOL = """
import multiprocessing
from verigrad import Derivation

with multiprocessing.Pool(2) as pool:  # user code may start processes of its own
    TWO = pool.apply(int, ("2",))

pooled = Derivation(name="pooled", shapes={"X": ("N",)}, forward=lambda xp, X: xp.sum(X ** 2), gradients=lambda X: {"X": TWO * X})
"""


def test_a_derivation_file_may_start_a_pool(tmp_path, capsys):
    (tmp_path / "pooled.py").write_text(POOL)
    code = _check(str(tmp_path / "pooled.py"))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 0, out + err


HELPER_PROCESS = """
import subprocess
from pathlib import Path
from verigrad import Derivation

helper = subprocess.Popen(["sleep", "1000"])  # inherits the worker's stdout and stderr: the run's
with Path(__file__).with_suffix(".helpers").open("a") as pids:  # one per load: when planned, when checked
    pids.write(f"{helper.pid}\\n")

good = Derivation(name="good", shapes={"X": ("N",)}, forward=lambda xp, X: xp.sum(X ** 2), gradients=lambda X: {"X": 2 * X})
"""


def _verigrad(*argv: str, cwd: Path, ignore_sigint: bool = False) -> subprocess.Popen:
    """verigrad started as a shell starts a background job when ``ignore_sigint`` (SIGINT ignored)."""
    command = [sys.executable, "-m", "verigrad", "check", "--seed", "0", "--no-database", "--no-color", *argv]
    if ignore_sigint:  # an ignored signal stays ignored across exec
        command = ["sh", "-c", 'trap "" INT; exec "$0" "$@"', *command]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_process_a_derivation_started_ends_with_its_job_and_holds_no_output_open(tmp_path):
    (tmp_path / "helps.py").write_text(HELPER_PROCESS)
    proc = _verigrad("helps.py", "--examples", "2", cwd=tmp_path)
    try:
        _, err = proc.communicate(timeout=RUN_LIMIT)  # returns once nobody holds verigrad's stdout and stderr
    finally:
        proc.kill()
        marker = tmp_path / "helps.helpers"
        helpers = [int(p) for p in marker.read_text().split()] if marker.exists() else []
        left = _wait_gone(helpers, 1)  # SIGKILL was sent before the run ended; its delivery may take a moment
        _kill_left(left)
    assert proc.returncode == 0, err
    assert len(helpers) == 2 and left == []


SLOW = """
import os, time
from pathlib import Path
from verigrad import Derivation

HERE = Path(__file__)
QUICK = HERE.with_suffix(".quick")  # the pid of quick's worker
PIDS = HERE.with_suffix(".pids")  # the worker's and its parent's (the fork server): the run has reached it

def gone(pid):
    try:
        return "\\nState:\\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True

def quick_forward(xp, X):
    if not QUICK.exists():
        QUICK.write_text(str(os.getpid()))
    return xp.sum(X ** 3)

def forward(xp, X):
    # Side by side or in turn, slow goes on only once quick's worker is gone: quick's report was sent before.
    while not (QUICK.exists() and QUICK.read_text() and gone(int(QUICK.read_text()))):
        time.sleep(0.01)
    if not PIDS.exists():
        PIDS.write_text(f"{os.getpid()} {os.getppid()}")
    time.sleep(SLEEP)
    return xp.sum(X ** 2)

quick = Derivation(name="quick", shapes={"X": ("N",)}, forward=quick_forward, gradients=lambda X: {"X": 3 * X ** 2})
slow = Derivation(name="slow", shapes={"X": ("N",)}, forward=forward, gradients=lambda X: {"X": 2 * X})
"""


def _started_slow(tmp_path: Path, *argv: str, sleep: float = 0.2, ignore_sigint: bool = False) -> tuple[subprocess.Popen, list[int]]:
    """verigrad checking "quick" and "slow" (minutes), once it is in slow's worker and quick's check is over."""
    (tmp_path / "slow.py").write_text(f"SLEEP = {sleep}\n" + SLOW)
    proc = _verigrad("slow.py", "--examples", "2", *argv, cwd=tmp_path, ignore_sigint=ignore_sigint)
    pids = tmp_path / "slow.pids"
    deadline = time.monotonic() + RUN_LIMIT
    while not (pids.exists() and pids.read_text()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None or not pids.exists():
        proc.kill()
        pytest.fail(f"the run never reached the slow derivation: {proc.communicate()}")
    time.sleep(0.3)  # quick's report, sent before its worker ended, has reached the run
    return proc, [int(p) for p in pids.read_text().split()]


@pytest.mark.parametrize("jobs", ["1", "2"], ids=["in_turn", "side_by_side"])
@pytest.mark.parametrize("ignore_sigint", [False, True], ids=["foreground", "sigint_ignored"])
def test_sigterm_stops_the_run_as_ctrl_c_does_and_exits_143(tmp_path, ignore_sigint, jobs):
    proc, pids = _started_slow(tmp_path, "--json", "r.json", "--junit", "r.xml", "--jobs", jobs, ignore_sigint=ignore_sigint)
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=STOP_LIMIT)
    finally:
        proc.kill()
        left = _wait_gone(pids)
        _kill_left(left)
    assert proc.returncode == 143 == cli.EXIT_TERMINATED, err
    assert "Traceback" not in out + err
    assert "interrupted" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["interrupted"] is True
    assert [d["name"] for d in doc["derivations"]] == ["quick"]
    import xml.etree.ElementTree as ET

    assert ET.parse(tmp_path / "r.xml").getroot() is not None
    assert left == []  # neither the worker nor the fork server


SIDE_BY_SIDE = """
import os, time
from pathlib import Path
from verigrad import Derivation

def slow(name):
    pids = Path(__file__).with_name(name + ".pids")  # the worker's and the fork server's: its check has started

    def forward(xp, X):
        if not pids.exists():
            pids.write_text(f"{os.getpid()} {os.getppid()}")
        time.sleep(600)
        return xp.sum(X ** 2)

    return Derivation(name=name, shapes={"X": ("N",)}, forward=forward, gradients=lambda X: {"X": 2 * X})

first, second = slow("first"), slow("second")
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_jobs_side_by_side_all_stop_with_the_run_and_leave_no_process(tmp_path, signum):
    """Two derivations in their workers at once, each in a forward that sends nothing for ten minutes: Ctrl-C or
    SIGTERM stops both, kills both workers' groups and the fork server, and the reports say interrupted."""
    (tmp_path / "both.py").write_text(SIDE_BY_SIDE)
    proc = _verigrad("both.py", "--examples", "2", "--jobs", "2", "--json", "r.json", cwd=tmp_path)
    files = [tmp_path / "first.pids", tmp_path / "second.pids"]
    deadline = time.monotonic() + RUN_LIMIT
    while not all(f.exists() and f.read_text() for f in files) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = sorted({int(p) for f in files if f.exists() for p in f.read_text().split()})
    try:
        assert len(pids) == 3, f"the two checks never ran side by side: {pids}"  # two workers, one fork server
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=STOP_LIMIT)
    finally:
        proc.kill()
        left = _wait_gone(pids)
        _kill_left(left)
    assert proc.returncode == (cli.EXIT_INTERRUPTED if signum == signal.SIGINT else cli.EXIT_TERMINATED), err
    assert "Traceback" not in out + err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["interrupted"] is True and doc["derivations"] == []
    assert left == []


def test_a_killed_run_leaves_no_worker_behind(tmp_path):
    """Killed while its worker is in a forward that sends nothing for ten minutes (no broken pipe to notice)."""
    proc, pids = _started_slow(tmp_path, sleep=600)
    proc.kill()
    proc.wait(timeout=STOP_LIMIT)
    proc.stdout.close()
    proc.stderr.close()
    left = _wait_gone(pids)
    _kill_left(left)
    assert left == []


def test_a_report_rebuilt_from_its_plain_data_reads_the_same_in_every_view():
    import pickle

    from verigrad import check
    from verigrad.checks.loader import load_target
    from verigrad.checks.report import Report, RunReport, plain_data, render
    from verigrad.checks.report.html import render_html
    from verigrad.checks.report.junit import render_junit
    from verigrad.checks.report.markdown import render_markdown
    from verigrad.checks.workers import read_message

    (wrong,) = load_target(str(Path(__file__).parent.parent / "docs" / "example_wrong.py"))
    report = check(wrong, seed=1, examples=5, database=False)
    assert report.status == "fail" and report.failures[0].slip is not None and report.failures[0].diagnosis is not None
    back = Report.from_plain(read_message(pickle.dumps(plain_data(report))))
    before, after = RunReport([report], seed=1), RunReport([back], seed=1)
    assert after.to_dict() == before.to_dict()
    for view in (render, render_markdown, render_junit, render_html):
        assert view(after) == view(before), view.__name__
    for g, h in zip(report.gradients, back.gradients, strict=True):
        assert (g.slip, g.diagnosis, g.trace, g.worst_index) == (h.slip, h.diagnosis, h.trace, h.worst_index)
        for name in ("analytic", "reference", "nondiff_mask"):
            np.testing.assert_array_equal(getattr(g, name), getattr(h, name))
