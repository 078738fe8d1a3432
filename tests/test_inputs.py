"""Inputs are checked before anything runs: numeric options, the memory variable, replay specs, names.

Every bad input is one line and exit 2 (a pytest usage error under the plugin); every replay or rerun
command a report prints runs as printed, whatever the derivation is named.
"""

import re
import shlex
import shutil
import subprocess
import textwrap

import pytest

from verigrad.analytic import Derivation, DerivationError
from verigrad.checks.cli import build_parser, main
from verigrad.checks.limits import memory_limit
from verigrad.checks.loader import resolve_targets
from verigrad.checks.search import check, parse_replay
from verigrad.checks.search.replay import check_replay, replay_command

pytest_plugins = ["pytester"]


def usage_error(capsys, *argv: str) -> str:
    """The one line a bad command line gets; fails unless the run exits 2 with exactly one line."""
    try:
        code = main(["check", "--no-database", "--no-color", *argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verigrad: "), err
    return lines[0]


# --- numeric options and the environment ------------------------------------------------------

BAD_NUMBERS = [
    ("--timeout", "inf"),
    ("--timeout", "-inf"),
    ("--timeout", "nan"),
    ("--timeout", "-5"),
    ("--timeout", "five"),
    ("--timeout", "1e300"),  # finite, but past what the interval timer can arm
    ("--examples", "0"),
    ("--examples", "-3"),
    ("--examples", "1.5"),
    ("--examples", "inf"),
    ("--seed", "-1"),
    ("--seed", str(2**32)),
    ("--seed", "nan"),
]


@pytest.mark.parametrize(("option", "value"), BAD_NUMBERS, ids=str)
def test_a_bad_number_is_one_line_naming_option_and_value(capsys, option, value):
    line = usage_error(capsys, "relu_regression", f"{option}={value}")
    assert option in line
    assert value in line or str(int(value)) in line


def test_timeout_zero_still_means_no_limit(capsys):
    code = main(["check", "relu_regression", "--no-database", "--timeout", "0", "--replay", "N=2,D=3,M=1,seed=9"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert build_parser().parse_args(["check", "--timeout", "0"]).timeout == 0


@pytest.mark.parametrize("seconds", [float("inf"), float("nan"), -1, 1e300])
def test_the_library_refuses_a_bad_timeout_before_running_anything(seconds):
    calls = []
    d = Derivation(name="counted", shapes={"X": ("N",)}, forward=lambda xp, X: calls.append(1) or xp.sum(X), gradients=lambda X: {"X": X * 0 + 1})
    with pytest.raises(ValueError, match=r"^timeout: .*" + re.escape(str(seconds))):
        check(d, timeout=seconds, examples=1, database=False)
    assert calls == []
    assert check(d, timeout=0, examples=1, database=False).passed and calls  # 0: no limit


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "lots", "1e999"])
def test_a_bad_memory_limit_is_one_line_naming_the_variable(capsys, monkeypatch, value):
    monkeypatch.setenv("VERIGRAD_MAX_MEMORY", value)
    with pytest.raises(ValueError, match=r"^VERIGRAD_MAX_MEMORY: .*" + re.escape(repr(value))):
        memory_limit()
    line = usage_error(capsys, "relu_regression")
    assert "VERIGRAD_MAX_MEMORY" in line and repr(value) in line


def test_a_memory_limit_in_float_notation_is_taken(monkeypatch):
    monkeypatch.setenv("VERIGRAD_MAX_MEMORY", "1.5e9")
    assert memory_limit() == 1_500_000_000


PLUGIN_SQUARE = """
import numpy as np
from verigrad.analytic import Derivation

square = Derivation(name={name!r}, shapes={{"X": ("N",)}}, forward=lambda xp, X: xp.sum(X ** 2), gradients=lambda X: {{"X": {grad}}})
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--verigrad-timeout", "inf"],
        ["--verigrad-timeout", "nan"],
        ["--verigrad-timeout", "-1"],
        ["--verigrad-timeout", "soon"],
        ["--verigrad-examples", "0"],
        ["--verigrad-seed", "-1"],
    ],
    ids=" ".join,
)
def test_the_plugin_s_bad_numbers_are_a_usage_error(pytester, args):
    pytester.makepyfile(test_square=PLUGIN_SQUARE.format(name="square", grad="2 * X"))
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and args[0] in errors[0] and args[1] in errors[0], result.errlines
    assert "Traceback" not in "\n".join(result.errlines + result.outlines)


def test_the_plugin_refuses_a_bad_memory_limit(pytester, monkeypatch):
    monkeypatch.setenv("VERIGRAD_MAX_MEMORY", "inf")
    pytester.makepyfile(test_square=PLUGIN_SQUARE.format(name="square", grad="2 * X"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(line.startswith("ERROR: VERIGRAD_MAX_MEMORY:") for line in result.errlines), result.errlines


# --- replay specs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("N=2,N=3,D=3,M=1,seed=9", "N is given twice"),
        ("N=2,D=3,M=1,seed=9,seed=9", "seed is given twice"),
        ("N=2,D=3,M=1,Q=4,seed=9", "unknown dim(s) Q"),
        ("N=2,D=3,seed=9", "no size for M"),
    ],
)
def test_a_replay_spec_must_name_exactly_the_dims_once(capsys, spec, needle):
    line = usage_error(capsys, "relu_regression", "--replay", spec)
    assert needle in line
    if "dim" in needle or "size" in needle:
        assert "'relu_regression'" in line  # which derivation the spec does not fit


def test_parse_replay_refuses_duplicates_and_check_replay_names_the_derivation():
    with pytest.raises(ValueError, match="D is given twice"):
        parse_replay("D=1,D=1,seed=0")
    d = Derivation(name="lin", shapes={"X": ("N", "D")}, forward=lambda xp, X: xp.sum(X), gradients=lambda X: {"X": X * 0 + 1})
    check_replay(d, {"N": 1, "D": 2})
    with pytest.raises(ValueError, match=r"no size for D for derivation 'lin'"):
        check_replay(d, {"N": 1})


# --- names and dims that a command line cannot carry ---------------------------------------------


def lin(name: str = "lin", dim: str = "N") -> Derivation:
    return Derivation(name=name, shapes={"X": (dim, 2)}, forward=lambda xp, X: xp.sum(X), gradients=lambda X: {"X": X * 0 + 1})


def test_a_dim_named_seed_is_refused_with_the_derivation_s_name():
    with pytest.raises(DerivationError, match=r"^derivation 'mine': .*dim name 'seed' is reserved"):
        lin("mine", "seed")
    lin("mine", "seeds")  # only the exact name collides


def test_a_name_with_a_lone_surrogate_is_refused():
    # It could be neither written to a UTF-8 report nor typed.
    with pytest.raises(DerivationError, match=r"^derivation .*lone surrogate"):
        lin("bad\udcff")


def bash_words(command: str) -> list[str]:
    """The words bash makes of ``command``, as Python's argv would hold them."""
    out = subprocess.run(["bash", "-c", "printf '%s\\0' " + command], capture_output=True, check=True).stdout
    return [w.decode("utf-8", "surrogateescape") for w in out.split(b"\0")[:-1]]


ODD_NAMES = ["-h", "--only", "a b", "it's", 'say "hi"', "x;rm -rf ~", "$(echo no)", "`no`", "a*b?", "naïve", "~home", "#hash", "a=b,seed=1"]
UNPRINTABLE = ["two\nlines", "bell\a", "esc\x1b[31m", "-tab\there", "zero\u200bwidth", "back\\slash\x85'q'", "del\x7f"]
TARGETS = [None, "mine.py", "-dash.py", "dir with space/x.py", "new\nline.py", "esc\x1b[31m.py", "-\x7f.py", "bad\udcff.py"]


def parses_back(words: list[str], name: str, target: str | None) -> None:
    assert words[:2] == ["verigrad", "check"]
    args = build_parser().parse_args(words[1:])
    assert args.only == [name]
    # No target known: a placeholder for the file, still one word.
    assert args.targets == (["<file.py>"] if target is None else [target if not target.startswith("-") else f"./{target}"])
    assert parse_replay(args.replay) == ({"N": 3}, 7)


@pytest.mark.parametrize("name", ODD_NAMES)
@pytest.mark.parametrize("target", [t for t in TARGETS if t is None or t.isprintable()])
def test_a_printed_replay_command_parses_back_to_the_same_run(name, target):
    parses_back(shlex.split(replay_command(lin(name), target, {"N": 3}, 7)), name, target)


@pytest.mark.skipif(shutil.which("bash") is None, reason="the $'...' quoting is bash's")
@pytest.mark.parametrize("name", ODD_NAMES[:4] + UNPRINTABLE)
@pytest.mark.parametrize("target", TARGETS[1:])  # without a target the command holds a placeholder to replace
def test_unprintable_names_and_paths_are_printable_words_bash_reads_back(name, target):
    command = replay_command(lin(name), target, {"N": 3}, 7)
    assert command.isprintable()  # one line, nothing a terminal or report would have to escape
    parses_back(bash_words(command), name, target)


WRONG_FILE = """
import numpy as np
from verigrad.analytic import Derivation

wrong = Derivation(name={name!r}, shapes={{"X": ("N", "D")}}, forward=lambda xp, X: xp.sum(X ** 2), gradients=lambda X: {{"X": X}})
"""


@pytest.mark.parametrize("name", ["-h", "a b; echo x", "two\nlines\x1b"])
def test_the_replay_a_failure_prints_runs_as_printed(tmp_path, capsys, monkeypatch, name):
    if not name.isprintable() and shutil.which("bash") is None:
        pytest.skip("the $'...' quoting is bash's")
    (tmp_path / "mine.py").write_text(textwrap.dedent(WRONG_FILE.format(name=name)))
    monkeypatch.chdir(tmp_path)
    (target,), _ = resolve_targets(["mine.py"])
    report = check(target.derivation, examples=3, seed=1, target=target.label, database=False)
    assert not report.passed and report.replay
    words = shlex.split(report.replay) if name.isprintable() else bash_words(report.replay)
    code = main([*words[1:], "--no-database", "--no-color"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "1 passed" not in out and "0 passed, 1 failed" in out


def test_the_plugin_s_rerun_line_runs_as_printed(pytester):
    pytester.makepyfile(test_odd=PLUGIN_SQUARE.format(name="-h me", grad="X"))
    first = pytester.runpytest("-p", "no:cacheprovider", "--verigrad-examples", "3", "--verigrad-seed", "5")
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    reruns = [line.strip() for line in first.outlines if line.strip().startswith("rerun: pytest ")]
    assert reruns, first.outlines
    words = shlex.split(reruns[0].removeprefix("rerun: "))
    again = pytester.runpytest("-p", "no:cacheprovider", "--verigrad-examples", "3", *words[1:])
    again.assert_outcomes(failed=1)
