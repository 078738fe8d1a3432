"""Broken derivations and hostile input: one clear line each, the rest still checked, reports complete."""

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verigrad.checks.cli import main
from verigrad.checks.limits import DEFAULT_TIMEOUT

BROKEN = sorted(Path(__file__).parent.joinpath("broken").glob("*.py"))


def expectation(path: Path) -> tuple[str, int]:
    text = path.read_text()
    return re.search(r"^# expect: (.*)$", text, re.M).group(1), int(re.search(r"^# exit: (\d+)$", text, re.M).group(1))


#: Time limit of a run, in seconds: short, for the forward that never returns. A wall-clock limit, so the
#: derivations that do return are checked under the default limit instead (on a loaded machine one can take
#: more than a few seconds, and a timeout there would be the machine's verdict, not the derivation's).
HANG_LIMIT = 3


def run(capsys, *argv, timeout: float = HANG_LIMIT):
    code = main(["check", "--seed", "0", "--examples", "4", "--no-database", "--no-color", "--timeout", str(timeout), *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_each_broken_derivation_yields_its_line_and_the_good_one_still_passes(path, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VERIGRAD_MAX_MEMORY", str(2**30))
    needle, expected_code = expectation(path)
    report = tmp_path / "r.json"
    junit = tmp_path / "r.xml"
    timeout = HANG_LIMIT if needle.startswith("timed out") else DEFAULT_TIMEOUT
    code, out, _ = run(capsys, str(path), "relu_regression", "--json", str(report), "--junit", str(junit), timeout=timeout)
    assert needle in out, out
    assert path.stem in "\n".join(line for line in out.splitlines() if needle in line)
    assert code == expected_code
    doc = json.loads(report.read_text())
    by_name = {d["name"]: d for d in doc["derivations"]}
    assert by_name["relu_regression"]["status"] == "pass"
    assert ET.parse(junit).getroot() is not None
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".verigrad-")]  # no temporary left behind


SNIPPETS = st.sampled_from(
    [
        "import numpy as np\n",
        "from verigrad import Derivation\n",
        "D = Derivation(name='d', shapes={'X': ('N',)}, forward=lambda xp, X: xp.sum(X**2), gradients=lambda X: {'X': 2*X})\n",
        "raise SystemExit(3)\n",
        "import sys; sys.exit()\n",
        "def f(:\n",
        "x = 1/0\n",
        "\x00\x01",
        "é = 'ü'\n",
        "D2 = Derivation(name='', shapes={}, forward=None, gradients=None)\n",
        "Derivation = 3\n",
    ]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.nested_given, HealthCheck.function_scoped_fixture])
@given(parts=st.lists(SNIPPETS, max_size=4), noise=st.text(max_size=20))
def test_loader_never_shows_a_traceback(tmp_path_factory, parts, noise):
    path = tmp_path_factory.mktemp("fuzz") / "target.py"
    path.write_text("".join(parts) + "#" + noise.replace("\n", " ") + "\n", errors="surrogateescape")
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["check", str(path), "--examples", "2", "--seed", "0", "--no-database", "--no-color"])
        except SystemExit as e:  # argparse only
            code = e.code
    assert "Traceback" not in out.getvalue() + err.getvalue()
    assert code in (0, 1, 2, 3)
    if code == 2:
        assert err.getvalue().startswith("verigrad:")


DIM = st.one_of(st.text(max_size=4), st.integers(-2, 4), st.floats(allow_nan=True), st.none())


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(DIM, max_size=3), name=st.text(max_size=6))
def test_random_shape_specifications_are_accepted_or_refused_in_one_line(shape, name):
    from verigrad.analytic import Derivation, DerivationError

    try:
        Derivation(name=name, shapes={"X": tuple(shape)}, forward=lambda xp, X: xp.sum(X), gradients=lambda X: {"X": X * 0 + 1})
    except DerivationError as e:
        assert "\n" not in str(e).strip()
        assert str(e).startswith("derivation ")


ARGS = ["--examples", "--seed", "--replay", "--timeout", "--only", "-1", "0", "x", "N=1,seed=2", "relu_regression", "--json"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.nested_given])
@given(argv=st.lists(st.sampled_from(ARGS), max_size=5))
def test_random_cli_arguments_never_show_a_traceback(argv, tmp_path_factory):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cli"))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["check", "--no-database", "--examples", "1", *argv])
            except SystemExit as e:
                code = e.code
    finally:
        os.chdir(cwd)
    assert "Traceback" not in out.getvalue() + err.getvalue()
    assert code in (0, 1, 2, 3)


SLOW = '''
import time
from pathlib import Path
import numpy as np
from verigrad.analytic import Derivation

STARTED = Path(__file__).with_suffix(".started")  # the run (--jobs=1) has reached this derivation: the one before it is done

def forward(xp, X):
    STARTED.touch()
    time.sleep(0.2)
    return xp.sum(X ** 2)

slow = Derivation(name="slow", shapes={"X": ("N",)}, forward=forward, gradients=lambda X: {"X": 2 * X})
'''


#: Seconds the interrupted run may take to start and check relu_regression (a few, unless the machine is very busy).
STARTUP_LIMIT = 300


def test_ctrl_c_prints_what_was_checked_writes_complete_reports_and_exits_130(tmp_path):
    """Interrupted once it is checking "slow" (minutes), after relu_regression passed: the summary so far, exit 130."""
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "slow.py"
    target.write_text(SLOW)
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "verigrad", "check", "relu_regression", str(target), "--seed=0", "--jobs=1", "--no-database", "--json", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = target.with_suffix(".started")
    deadline = time.monotonic() + STARTUP_LIMIT
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists() and proc.poll() is None, "the run never reached the slow derivation"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    assert "interrupted" in out
    assert out.strip().splitlines()[-1] == "1 passed, 0 failed"
    doc = json.loads(report.read_text())
    assert doc["interrupted"] is True
    assert [d["name"] for d in doc["derivations"]] == ["relu_regression"]
