"""Reports the run cannot lose: paths refused before anything runs, write errors one line while the others are
written, load errors in every report, a closed or broken stdout, Ctrl-C while the reports are written."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from verigrad.checks.report import RunReport, Status, deferred_interrupt, load_failure_report, report_path_problem, write_each
from verigrad.checks.report.html import render_html
from verigrad.checks.report.markdown import render_markdown

FAST = ["--examples", "2", "--seed", "1", "--no-database", "--no-color"]


def verigrad(cwd, *argv, **kw):
    return subprocess.run(
        [sys.executable, "-m", "verigrad", "check", *argv, *FAST], check=False, cwd=cwd, capture_output=True, text=True, timeout=300, **kw
    )


def one_line(err):
    lines = [line for line in err.splitlines() if line.startswith("verigrad:") and "checking" not in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- paths refused before anything is loaded ------------------------------------------------------------


@pytest.fixture
def target(tmp_path):
    """A target that leaves a mark when it is loaded: a refused run must not have loaded it."""
    path = tmp_path / "mine.py"
    path.write_text(
        textwrap.dedent(
            """
            import pathlib
            pathlib.Path(__file__).with_name("loaded").write_text("yes")
            from verigrad.analytic import builtin
            relu = builtin("relu_regression")
            """
        )
    )
    return path


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        pytest.param(["--json", "r.json", "--markdown", "./sub/../r.json"], "the same file as --json r.json", id="same-twice"),
        pytest.param(["--junit", "folder"], "is a directory", id="directory"),
        pytest.param(["--html", "new/"], "is a directory", id="trailing-slash"),
        pytest.param(["--json", "mine.py"], "is a file being checked", id="the-target"),
        pytest.param(["--markdown", "link.py"], "is a file being checked", id="the-target-by-a-link"),
        pytest.param(["--json", "/dev/null"], "a character device", id="character-device"),
        pytest.param(["--json", "fifo"], "a FIFO", id="fifo"),
        pytest.param(["--json", "plain/r.json"], "is not a directory", id="folder-is-a-file"),
        pytest.param(["--json", ""], "an empty path", id="empty"),
    ],
)
def test_unusable_report_paths_exit_2_in_one_line_before_anything_is_loaded(tmp_path, target, argv, needle):
    (tmp_path / "folder").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "plain").write_text("a file")
    (tmp_path / "link.py").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "fifo"}
    done = verigrad(tmp_path, str(target), *argv)
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert needle in line and line.startswith(f"verigrad: {argv[-2]} ")
    assert not (tmp_path / "loaded").exists()  # refused before the target ran
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "fifo"} == before
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any folder")
def test_a_folder_that_cannot_be_written_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "cannot write in the folder" in report_path_problem({"json": str(locked / "r.json")}, [])
    finally:
        locked.chmod(0o700)


def test_usable_paths_pass_and_name_the_option_with_the_prefix(tmp_path):
    paths = {"json": str(tmp_path / "a" / "b" / "r.json"), "markdown": str(tmp_path / "r.md"), "junit": None}
    assert report_path_problem(paths, ["relu_regression"]) is None
    (tmp_path / "r.md").mkdir()
    line = report_path_problem(paths, [], prefix="--verigrad-")
    assert line.startswith(f"--verigrad-markdown {tmp_path / 'r.md'}: ")


def test_hard_links_to_the_same_file_are_the_same_path(tmp_path):
    (tmp_path / "r.json").write_text("{}")
    os.link(tmp_path / "r.json", tmp_path / "other.xml")
    line = report_path_problem({"json": str(tmp_path / "r.json"), "junit": str(tmp_path / "other.xml")}, [])
    assert line and "the same file as --json" in line


# --- write errors ------------------------------------------------------------------------------------------


def _run():
    return RunReport(reports=[load_failure_report("gone.py", "gone.py: no such file")], seed=5)


def test_a_report_that_cannot_be_written_is_one_line_and_the_others_are_written(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    paths = {
        "json": str(tmp_path / "r.json"),
        "markdown": str(tmp_path / "blocker" / "r.md"),  # its folder cannot be made
        "junit": str(tmp_path / "r.xml"),
        "html": str(tmp_path / "r.html"),
    }
    written = write_each(_run(), paths)
    assert len(written.problems) == 1 and not written.interrupted
    assert written.problems[0].startswith(f"--markdown {paths['markdown']}: the report could not be written: ")
    assert "\n" not in written.problems[0]
    assert json.loads((tmp_path / "r.json").read_text())["derivations"][0]["name"] == "gone.py"
    ET.parse(tmp_path / "r.xml")
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "r.html", "r.json", "r.xml"]  # no temporary left


def test_a_device_is_never_replaced_even_past_the_cli_check(tmp_path):
    written = write_each(_run(), {"json": "/dev/null", "junit": str(tmp_path / "r.xml")})
    assert len(written.problems) == 1 and "not a regular file" in written.problems[0]
    assert not os.path.isfile("/dev/null")
    ET.parse(tmp_path / "r.xml")


def test_a_report_through_a_symbolic_link_keeps_the_link(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    assert write_each(_run(), {"json": str(tmp_path / "link.json")}).problems == []
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text())["seed"] == 5


# --- load errors in every report ------------------------------------------------------------------------------


def test_a_target_that_failed_to_load_is_in_every_report_with_its_line(tmp_path):
    done = verigrad(tmp_path, "relu_regression", "absent.py", "--json", "r.json", "--markdown", "r.md", "--junit", "r.xml", "--html", "r.html")
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == "verigrad: absent.py: no such file"
    by_name = {d["name"]: d for d in json.loads((tmp_path / "r.json").read_text())["derivations"]}
    assert by_name["relu_regression"]["status"] == "pass"
    assert by_name["absent.py"]["status"] == "error" and by_name["absent.py"]["message"] == "absent.py: no such file"
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite.get("errors") == "1" and suite.get("failures") == "0"
    (case,) = [c for c in suite.iter("testcase") if c.get("classname") == "absent.py"]
    assert case.find("error") is not None and "absent.py: no such file" in case.find("error").get("message")
    for report in ("r.md", "r.html"):
        text = (tmp_path / report).read_text()
        assert "absent.py" in text and "no such file" in text, report


def test_a_load_failure_report_renders_as_an_error_in_each_view():
    run = _run()
    (r,) = run.reports
    assert r.status == Status.ERROR and r.target == "gone.py" and not r.gradients
    assert "could not be checked" in render_markdown(run) and "gone.py: no such file" in render_html(run)


# --- stdout closed or broken --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["broken", "closed"])
def test_a_closed_or_broken_stdout_changes_neither_the_reports_nor_the_exit_code(tmp_path, how):
    argv = [sys.executable, "-m", "verigrad", "check", "relu_regression", "linear_layer", *FAST, "--json", "r.json", "--junit", "r.xml"]
    if how == "broken":
        reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        done = subprocess.run(argv, check=False, cwd=tmp_path, stdout=reader.stdin, stderr=subprocess.PIPE, text=True, timeout=300)
        reader.stdin.close()
        reader.wait()
    else:
        done = subprocess.run(argv, check=False, cwd=tmp_path, stderr=subprocess.PIPE, text=True, timeout=300, preexec_fn=lambda: os.close(1))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [d["status"] for d in doc["derivations"]] == ["pass", "pass"]
    ET.parse(tmp_path / "r.xml")


# --- Ctrl-C ---------------------------------------------------------------------------------------------------


def test_ctrl_c_while_the_reports_are_written_waits_until_all_are_written(tmp_path, monkeypatch):
    from verigrad.checks.report import files

    real = files.write_json

    def interrupted_after_the_json(path, document):
        real(path, document)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(files, "write_json", interrupted_after_the_json)
    paths = {kind: str(tmp_path / f"r.{kind}") for kind in ("json", "markdown", "junit", "html")}
    written = write_each(_run(), paths)
    assert written.interrupted and written.problems == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"r.{k}" for k in paths)
    with pytest.raises(KeyboardInterrupt):
        files.write_reports(_run(), **paths)  # the plugin's entry point: the interrupt, after every report


def test_the_deferral_ends_with_the_block():
    with deferred_interrupt() as deferred:
        os.kill(os.getpid(), signal.SIGINT)
    assert deferred.received
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))  # the handler runs between bytecodes
