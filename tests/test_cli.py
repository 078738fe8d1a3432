"""The verigrad command: exit codes, one-line load errors, JSON report, user files."""

import json
import subprocess
import sys
import textwrap

import pytest

from verigrad.checks.cli import main

GOOD = '''
import numpy as np
from verigrad.analytic import Derivation

def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)

def gradients(X, w):
    r = X @ w
    return {"X": 2 * np.outer(r, w), "w": 2 * X.T @ r}

square = Derivation(name="square", shapes={"X": ("N", "D"), "w": ("D",)}, forward=forward, gradients=gradients)
'''

WRONG = GOOD.replace('"w": 2 * X.T @ r', '"w": X.T @ r').replace('name="square"', 'name="square_half"')


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def run(capsys, *argv):
    code = main(["check", "--seed", "3", "--examples", "8", "--no-database", "--no-color", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_builtins_pass_with_exit_0_and_a_table(capsys):
    code, out, _ = run(capsys, "relu_regression", "two_layer_sigmoid")
    assert code == 0
    assert "relu_regression" in out and "two_layer_sigmoid" in out
    assert out.strip().splitlines()[-1] == "2 passed, 0 failed"  # CI reads this closing line
    assert "seed 3" in out


def test_wrong_user_file_exits_1_naming_the_parameter(tmp_path, capsys):
    path = write(tmp_path, "mine.py", WRONG)
    code, out, _ = run(capsys, path)
    assert code == 1
    rows = [line.split()[:3] for line in out.splitlines()]
    assert ["square_half", "w", "FAIL"] in rows
    assert ["square_half", "X", "PASS"] in rows
    assert f"verigrad check {path} --only square_half --replay N=1,D=1,seed=" in out


def test_json_report_has_the_documented_shape(tmp_path, capsys):
    good, wrong = write(tmp_path, "good.py", GOOD), write(tmp_path, "wrong.py", WRONG)
    out = tmp_path / "out" / "report.json"
    code, _, _ = run(capsys, good, wrong, "--json", str(out))
    assert code == 1
    doc = json.loads(out.read_text())
    assert doc["version"] == 1 and doc["seed"] == 3
    by_name = {d["name"]: d for d in doc["derivations"]}
    assert by_name["square"]["status"] == "pass"
    assert by_name["square_half"]["status"] == "fail"
    assert by_name["square_half"]["counterexample"]["seed"] == by_name["square_half"]["point_seed"]
    grads = {g["param"]: g for g in by_name["square_half"]["gradients"]}
    assert grads["w"]["status"] == "fail" and grads["X"]["status"] == "pass"
    assert grads["w"]["blame"] == "analytic"
    assert isinstance(grads["w"]["worst_index"], list)
    assert grads["w"]["max_rel_err"] > 0.1


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        pytest.param(lambda p: str(p / "absent.py"), "no such file", id="missing"),
        pytest.param(lambda p: write(p, "notes.txt", "hello"), "not a Python file", id="not-python"),
        pytest.param(lambda p: write(p, "syntax.py", "def f(:\n"), "syntax error", id="syntax"),
        pytest.param(lambda p: write(p, "boom.py", "raise RuntimeError('boom')\n"), "raised on import: RuntimeError: boom", id="raises"),
        pytest.param(lambda p: write(p, "empty.py", "x = 1\n"), "defines no Derivation", id="no-derivation"),
        pytest.param(lambda p: "no_such_builtin", "not a built-in derivation", id="unknown-name"),
        pytest.param(
            lambda p: write(p, "bad.py", "from verigrad import Derivation\nD = Derivation(name='bad', shapes={}, forward=1, gradients=1)\n"),
            "derivation 'bad': shapes must be a non-empty mapping",
            id="malformed",
        ),
    ],
)
def test_load_errors_are_one_line_and_exit_2_while_good_targets_still_run(tmp_path, capsys, make, needle):
    bad = make(tmp_path)
    good = write(tmp_path, "good.py", GOOD)
    code, out, err = run(capsys, bad, good)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("verigrad:")]
    assert len(lines) == 1 and needle in lines[0]
    assert "square" in out and "1 passed, 0 failed" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--examples", "0"],
        ["check", "--examples", "many"],
        ["check", "--seed", "-1"],
        ["check", "--jobs", "0"],
        ["check", "--replay", "N=2"],
        ["check", "--replay", "N=x,seed=1"],
        ["check", "--frobnicate"],
        ["check", "relu_regression", "--only", "nope"],
    ],
    ids=lambda a: " ".join(a[1:]),
)
def test_usage_errors_exit_2_in_one_line(capsys, argv):
    with pytest.raises(SystemExit) as info:
        code = main(argv)
        raise SystemExit(code)
    out, err = capsys.readouterr()
    assert info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("verigrad:")
    assert "Traceback" not in out + err


def _without_durations(doc):
    for d in doc["derivations"]:
        d.pop("duration_s")
    return doc


def test_side_by_side_reports_are_those_of_a_run_in_turn_in_the_same_order(tmp_path, capsys):
    """--jobs 2 (a failing derivation between two passing ones): the same reports, whole, in the planned order,
    the same exit code, as one after another."""
    half = "\nhalf = Derivation(name='square_half', shapes=square.shapes, forward=forward, gradients=gradients_half)\n"
    half = "\ndef gradients_half(X, w):\n    return {**gradients(X, w), 'w': X.T @ (X @ w)}\n" + half
    path = write(tmp_path, "mine.py", GOOD + half)
    docs, codes, tables = [], [], []
    for jobs in ("1", "2"):
        report = tmp_path / f"r{jobs}.json"
        code, out, _ = run(capsys, "relu_regression", path, "two_layer_sigmoid", "--jobs", jobs, "--json", str(report))
        codes.append(code)
        tables.append(out)
        docs.append(_without_durations(json.loads(report.read_text())))
    assert codes == [1, 1]
    assert [d["name"] for d in docs[1]["derivations"]] == ["relu_regression", "square", "square_half", "two_layer_sigmoid"]
    assert docs[0] == docs[1]
    assert tables[0] == tables[1]


def test_replay_checks_exactly_one_point(capsys):
    code, out, _ = run(capsys, "relu_regression", "--replay", "N=2,D=3,M=1,seed=9")
    assert code == 0
    assert "1 passed, 0 failed" in out


def test_list_shows_the_builtins(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "two_layer_sigmoid_mse" in out and "W1:(D_in, H)" in out


def test_list_shows_a_builtins_data_hyperparameters_and_seed(capsys):
    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "hyper stride: [1, 2]; hyper pad: [0, 1]" in lines["conv2d"]
    assert "data y: integers(0, 'C', shape=('N',))" in lines["softmax_cross_entropy_labels"]
    assert lines["dropout"].endswith("seeded")


@pytest.mark.parametrize("module", ["verigrad", "verigrad.checks"])
def test_console_entry_point_runs_as_a_module(module, tmp_path):
    proc = subprocess.run(  # from elsewhere than the repository, as a user runs it
        [sys.executable, "-m", module, "check", "relu_regression", "--examples", "3", "--seed", "1", "--no-database"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 passed, 0 failed" in proc.stdout


def test_device_runs_autograd_there_or_says_in_one_line_why_not(capsys):
    import torch

    code, out, err = run(capsys, "relu_regression", "--device", "cuda")
    if torch.cuda.is_available():
        assert code == 0 and "1 passed, 0 failed" in out
    else:
        assert code == 2
        assert err.strip() == "verigrad: --device cuda: no CUDA device is available on this machine (torch.cuda.is_available() is False)"
    code, _, err = run(capsys, "relu_regression", "--device", "quantum")
    assert code == 2 and err.startswith("verigrad: --device quantum:")
