"""User code runs in worker processes: what it does to its process ends there, and the run goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from verigrad.checks.cli import main
from verigrad.checks.workers import GRACE

GOOD = """
import numpy as np
from verigrad import Derivation

good = Derivation(name="good", shapes={"X": ("N",)}, forward=lambda xp, X: xp.sum(X ** 2), gradients=lambda X: {"X": 2 * X})
"""

#: A derivation that leaves every kind of global state changed behind it, then computes its value correctly.
LEAKER = """
import os, tempfile, threading, time
import numpy as np
import torch
from verigrad import Derivation

def forward(xp, X):
    value = xp.sum(X ** 2)
    os.chdir(tempfile.gettempdir())
    torch.set_grad_enabled(False)
    torch.set_default_dtype(torch.float32)
    np.seterr(all="raise")
    np.random.seed(0)
    threading.Thread(target=time.sleep, args=(3600,)).start()  # not a daemon: would keep a process alive
    return value

leaker = Derivation(name="leaker", shapes={"X": ("N",)}, forward=forward, gradients=lambda X: {"X": 2 * X})
"""


def _cli(*argv: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "verigrad", "check", "--seed", "0", "--examples", "2", "--no-database", *argv],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_state_a_derivation_changes_does_not_reach_the_next_and_its_threads_end_with_it(tmp_path):
    (tmp_path / "leak.py").write_text(LEAKER + GOOD)
    started = time.monotonic()
    proc = _cli("leak.py", "relu_regression", "--json", "r.json", cwd=tmp_path)
    assert time.monotonic() - started < 60  # the thread of an hour did not keep the run alive
    assert "Traceback" not in proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "r.json").read_text())  # the relative path still means the run's folder
    status = {d["name"]: d["status"] for d in doc["derivations"]}
    assert status["good"] == "pass" and status["relu_regression"] == "pass", proc.stdout


@pytest.mark.parametrize(
    ("top_level", "needle"),
    [
        ("while True:\n    pass\n", "loading it timed out"),
        ("import os\nos._exit(0)\n", "loading it user code ended the worker process (exit code 0"),
        ("import sys\nsys.exit(0)\n", "raised on import: SystemExit"),
        ("import ctypes\nctypes.string_at(0)\n", "killed by SIGSEGV"),
    ],
    ids=["hangs", "os_exit", "sys_exit", "segfault"],
)
def test_a_target_that_hangs_or_dies_while_loading_is_one_line_and_the_others_are_checked(tmp_path, capsys, top_level, needle):
    (tmp_path / "bad.py").write_text(top_level)
    report = tmp_path / "r.json"
    code = main(
        [
            "check",
            str(tmp_path / "bad.py"),
            "relu_regression",
            "--seed",
            "0",
            "--examples",
            "2",
            "--no-database",
            "--timeout",
            "2",
            "--json",
            str(report),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert needle in err and "Traceback" not in out + err
    assert "relu_regression" in out and "1 passed, 0 failed" in out


def test_a_fifo_target_is_refused_without_reading_it(tmp_path, capsys):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    code = main(["check", str(fifo), "--examples", "2", "--no-database"])
    assert code == 2
    assert "not a regular file" in capsys.readouterr().err


def test_the_hard_limit_holds_against_a_forward_that_blocks_the_timer(tmp_path, capsys):
    (tmp_path / "blocks.py").write_text(
        GOOD
        + textwrap.dedent(
            """
            import signal, time
            def stubborn(xp, X):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
                while True:
                    time.sleep(0.05)
            blocks = Derivation(name="blocks", shapes={"X": ("N",)}, forward=stubborn, gradients=lambda X: {"X": 2 * X})
            """
        )
    )
    started = time.monotonic()
    code = main(["check", str(tmp_path / "blocks.py"), "--seed", "0", "--examples", "2", "--no-database", "--timeout", "2"])
    out = capsys.readouterr().out
    assert time.monotonic() - started < 2 + GRACE + 30
    assert code == 3
    assert "blocks" in out and "timed out" in out and "good" in out and "1 passed" in out


def test_memory_beyond_the_limit_is_one_line_for_that_derivation(tmp_path):
    (tmp_path / "hog.py").write_text(
        GOOD
        + textwrap.dedent(
            """
            def hog(xp, X):
                return xp.sum(X) + float(np.ones(2**28).sum())  # 2 GiB
            hog_d = Derivation(name="hog", shapes={"X": ("N",)}, forward=hog, gradients=lambda X: {"X": np.ones_like(X)})
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "verigrad", "check", "hog.py", "--seed", "0", "--examples", "2", "--no-database", "--json", "r.json"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "VERIGRAD_MAX_MEMORY": str(256 * 2**20)},
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    status = {d["name"]: (d["status"], d["message"]) for d in json.loads((tmp_path / "r.json").read_text())["derivations"]}
    assert status["good"][0] == "pass"
    assert status["hog"][0] == "error" and "MemoryError" in status["hog"][1]
