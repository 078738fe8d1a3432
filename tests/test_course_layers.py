"""The course-style layers in examples/course, checked as a new user would: ``layers.py`` pasted unchanged,
``check_layers.py`` declaring only the calling convention. The right layers pass; a convolution backward
wrong only at pad 0 and a max-pool backward wrong only with overlapping windows are caught, each with
the configuration it is wrong at in its counterexample, and pass on the grid without it."""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from verigrad.checks import check
from verigrad.checks.loader import load_file
from verigrad.checks.report import Blame, Kind, Status

COURSE = Path(__file__).resolve().parents[1] / "examples" / "course"
#: Sizes tried per derivation: the NumPy-only loops are slow under finite differences, and a few sizes
#: already meet every configuration of the grids (4 of conv_param, 3 of pool_param).
EXAMPLES, SEED = 8, 3
#: The command as installed, run with this interpreter.
VERIGRAD = (sys.executable, "-m", "verigrad.checks")
RIGHT = ("affine", "relu", "batchnorm", "conv", "max_pool", "softmax_loss", "lstm_step")


@pytest.fixture
def load(monkeypatch):
    """Load a file of examples/course as the command does; the course's module names are its own meanwhile."""
    for module in ("layers", "check_layers"):
        monkeypatch.delitem(sys.modules, module, raising=False)

    def loaded(filename: str) -> dict:
        return {d.name: d for d in load_file(str(COURSE / filename))}

    yield loaded
    for module in ("layers", "check_layers"):
        sys.modules.pop(module, None)


def test_check_layers_declares_every_course_layer(load):
    found = load("check_layers.py")
    assert set(found) == set(RIGHT)
    assert found["lstm_step"].symbols == ("N", "D", "H")  # 4*H is an expression of H, not a dim of its own
    assert set(found["conv"].hyper) == {"conv_param"} and set(found["softmax_loss"].data) == {"y"}


@pytest.mark.parametrize("name", RIGHT)
def test_right_course_layer_passes(load, name):
    d = load("check_layers.py")[name]
    report = check(d, examples=EXAMPLES, seed=SEED, database=False)
    assert report.passed, report.message
    assert {g.param for g in report.gradients} == set(d.params)
    assert report.autograd_available is False  # NumPy-only code: finite differences alone, and the report says so


def _caught(d, param: str):
    report = check(d, examples=EXAMPLES, seed=SEED, database=False)
    assert report.status == Status.FAIL, report.message
    assert [g.param for g in report.failures] == [param]
    assert report.failures[0].blame == Blame.ANALYTIC
    return report


def test_conv_backward_wrong_only_at_pad_0_is_caught_at_pad_0(load):
    d = load("wrong_conv_pad.py")["conv_pad_slice"]
    report = _caught(d, "x")
    assert report.hyper["conv_param"]["pad"] == 0
    assert report.failures[0].counterexample["hyper"]["conv_param"]["pad"] == 0
    assert "'pad':0}" in report.replay.replace(" ", "")  # the replay command reproduces that configuration
    padded = [c for c in d.hyper["conv_param"] if c["pad"] > 0]
    assert check(dataclasses.replace(d, hyper={"conv_param": padded}), examples=EXAMPLES, seed=SEED, database=False).passed


def test_pool_backward_wrong_only_with_overlapping_windows_is_caught_there(load):
    d = load("wrong_pool_overlap.py")["max_pool_assigned"]
    report = _caught(d, "x")
    found = report.failures[0].counterexample["hyper"]["pool_param"]
    assert found["stride"] < found["pool_height"], found
    # A max-pool picks one input of each window by its value: = for += is an assignment, not a scattered partial.
    diagnosis = report.failures[0].diagnosis
    assert diagnosis.kind == Kind.ASSIGNMENT, diagnosis.sentence
    side_by_side = [c for c in d.hyper["pool_param"] if c["stride"] >= c["pool_height"]]
    assert check(dataclasses.replace(d, hyper={"pool_param": side_by_side}), examples=EXAMPLES, seed=SEED, database=False).passed


def test_the_command_finds_the_pad_0_bug_and_its_replay_reproduces_it():
    # As a user runs it: the file from the command line, the failure's replay command run as printed.
    root = COURSE.parents[1]
    run = lambda args: subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=300, check=False)
    first = run([*VERIGRAD, "check", "examples/course/wrong_conv_pad.py", "--examples", str(EXAMPLES), "--seed", str(SEED), "--no-color"])
    assert first.returncode == 1, first.stderr
    assert re.search(r"conv_param=\{'stride': \d, 'pad': 0\}", first.stdout), first.stdout
    replay = next(line.split("replay: ", 1)[1] for line in first.stdout.splitlines() if "replay: verigrad check" in line)
    again = run([*VERIGRAD, *shlex.split(replay)[1:], "--no-color"])
    assert again.returncode == 1, again.stderr
    assert "FAIL conv_pad_slice: ∂f/∂x has shape" in again.stdout
