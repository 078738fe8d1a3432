"""The pytest plugin takes what the imported test module holds, and its replay commands run where they are printed:
derivations bound through ``globals()``, test modules of a package with relative or absolute imports of their helpers,
and the options that change a verdict carried into the command."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]

FAST = ["-p", "no:cacheprovider", "--verigrad-examples", "4", "--verigrad-seed", "7", "--verigrad-no-database"]

HELPERS = '''
import numpy as np

SHAPES = {"X": ("N", "D"), "w": ("D",)}

def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)

def scaled(k):
    """The gradients times k: right for k = 1 only."""
    def gradients(X, w):
        r = X @ w
        return {"X": k * 2 * np.outer(r, w), "w": k * 2 * X.T @ r}
    return gradients
'''

BOUND_IN_A_LOOP = '''
from verigrad.analytic import Derivation
from {helpers} import SHAPES, forward, scaled

for k in (1, 2):
    globals()[f"power_{{k}}"] = Derivation(name=f"power_{{k}}", shapes=SHAPES, forward=forward, gradients=scaled(k))
'''

#: The same, bound by plain assignments.
ASSIGNED = '''
from verigrad.analytic import Derivation
from {helpers} import SHAPES, forward, scaled

power_1 = Derivation(name="power_1", shapes=SHAPES, forward=forward, gradients=scaled(1))
power_2 = Derivation(name="power_2", shapes=SHAPES, forward=forward, gradients=scaled(2))
'''


def project(pytester: pytest.Pytester, **files: str) -> None:
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def replay_lines(text: str) -> list[str]:
    return [line.split("replay: ", 1)[1] for line in text.splitlines() if "replay: verigrad check" in line]


def run_as_printed(command: str, where: os.PathLike) -> subprocess.CompletedProcess:
    """``command`` as a user pastes it, in ``where``; ``verigrad`` is this environment's script."""
    argv = shlex.split(command)
    assert argv[0] == "verigrad"
    script = os.path.join(os.path.dirname(sys.executable), "verigrad")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    return subprocess.run([script, *argv[1:], "--no-database"], cwd=where, check=False, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(autouse=True)
def _not_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


def test_derivations_bound_through_globals_are_collected(pytester):
    project(pytester, **{"helpers_power.py": HELPERS, "test_power.py": BOUND_IN_A_LOOP.format(helpers="helpers_power")})
    report = pytester.path / "report.json"
    result = pytester.runpytest("-v", *FAST, f"--verigrad-json={report}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["test_power.py::verigrad[[]power_1[]] PASSED*", "test_power.py::verigrad[[]power_2[]] FAILED*"])
    status = {d["name"]: d["status"] for d in json.loads(report.read_text())["derivations"]}
    assert status == {"power_1": "pass", "power_2": "fail"}


@pytest.mark.parametrize("helpers", [".helpers", "tests.helpers"], ids=["relative", "absolute"])
def test_a_replay_printed_for_a_test_module_of_a_package_reproduces_the_failure(pytester, helpers):
    project(pytester, **{"tests/__init__.py": "", "tests/helpers.py": HELPERS, "tests/test_power.py": ASSIGNED.format(helpers=helpers)})
    result = pytester.runpytest_subprocess(*FAST, timeout=120)
    result.assert_outcomes(passed=1, failed=1)
    (command,) = replay_lines(result.stdout.str())
    assert command.startswith("verigrad check tests/test_power.py --only power_2 --replay ")
    replayed = run_as_printed(command, pytester.path)
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "power_2" in replayed.stdout and "0 passed, 1 failed" in replayed.stdout


def test_a_printed_replay_carries_the_options_that_change_the_verdict(pytester):
    project(pytester, **{"helpers_power.py": HELPERS, "power.py": BOUND_IN_A_LOOP.format(helpers="helpers_power")})
    script = os.path.join(os.path.dirname(sys.executable), "verigrad")
    options = ["--mode", "projection", "--include-kinks"]
    argv = [script, "check", "power.py", "--examples", "3", "--seed", "1", "--no-database", "--no-color", "--json", "r.json", *options]
    result = subprocess.run(argv, check=False, cwd=pytester.path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    (command, *_) = replay_lines(result.stdout)
    words = shlex.split(command)
    assert words[words.index("--mode") + 1] == "projection" and "--include-kinks" in words
    # The replay of the point a passing gradient's figures were taken at carries them as well.
    doc = json.loads((pytester.path / "r.json").read_text())
    passing = [g["figures_at"]["replay"] for d in doc["derivations"] for g in d["gradients"] if g["status"] == "pass"]
    assert passing and all(" --mode projection --include-kinks " in r for r in passing), passing
    replayed = run_as_printed(command, pytester.path)
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr


def test_derivations_imported_with_a_star_are_not_collected_again(pytester):
    project(pytester, **{"helpers_power.py": HELPERS, "test_power.py": ASSIGNED.format(helpers="helpers_power")})
    project(pytester, **{"test_star.py": "from test_power import *\nfrom helpers_power import *\n"})
    result = pytester.runpytest("--collect-only", "-q", *FAST)
    collected = [line for line in result.stdout.lines if "::verigrad[" in line]
    assert collected == ["test_power.py::verigrad[power_1]", "test_power.py::verigrad[power_2]"]
