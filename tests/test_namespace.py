"""One import name: installed, only ``verigrad`` is importable at the top level, and a user project with its own
``checks``, ``analytic`` and ``reference`` packages keeps them, under pytest with the plugin loaded and under the CLI."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import verigrad

ROOT = Path(__file__).resolve().parents[1]
#: The repository's folders of code that import the package (everything a user or the suite runs).
CODE_FOLDERS = ("verigrad", "analytic", "reference", "checks", "tests", "benchmarks", "examples", "docs")
BARE = {"analytic", "reference", "checks"}


def _python_files():
    for folder in CODE_FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))
    yield ROOT / "conftest.py"


def test_nothing_imports_the_bare_folder_names():
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in BARE]
    assert not offenders, offenders


def test_public_api_is_one_import():
    for name in verigrad.__all__:
        assert getattr(verigrad, name) is not None, name
    from verigrad import Derivation, DerivationError, Report, assert_gradients, check

    assert Derivation.__module__.startswith("verigrad.analytic")
    assert Report.__module__.startswith("verigrad.checks")
    assert callable(check) and callable(assert_gradients) and issubclass(DerivationError, Exception)


def test_wheel_has_one_top_level_name(tmp_path):
    """Built as pip builds it, the wheel holds ``verigrad`` (with the three witnesses inside) and its metadata only."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", ".hypothesis", "__pycache__"))
    out = tmp_path / "wheel"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("verigrad-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"verigrad", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, top
    for module in ("verigrad/__init__.py", "verigrad/analytic/__init__.py", "verigrad/reference/__init__.py", "verigrad/checks/cli.py"):
        assert module in names, module
    dist_info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(dist_info).decode().split() == ["verigrad"]


USER_PACKAGES = {
    "checks/__init__.py": "ok = 'the project’s own checks'\n",
    "analytic/__init__.py": "def Derivation():\n    return 'the project’s own analytic'\n",
    "reference/__init__.py": "VALUE = 3\n",
    "tests/__init__.py": "",
    "tests/test_own.py": '''
        import numpy as np
        from checks import ok
        from analytic import Derivation as OwnDerivation
        from reference import VALUE

        from verigrad import Derivation

        def test_own_packages():
            assert ok.startswith("the project") and OwnDerivation().endswith("analytic") and VALUE == 3

        def forward(xp, X):
            return xp.sum(X ** 2)

        square = Derivation(name="square", shapes={"X": ("N",)}, forward=forward, gradients=lambda X: {"X": 2 * X})
    ''',
}


@pytest.fixture
def user_project(tmp_path):
    for rel, text in USER_PACKAGES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def _run(args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "CI"}}
    return subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=300)


def test_plugin_loads_beside_the_projects_own_packages(user_project):
    run = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--verigrad-examples", "3", "tests"], user_project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_own_packages PASSED" in run.stdout
    assert "verigrad[square] PASSED" in run.stdout


def test_cli_checks_a_file_of_a_project_with_its_own_checks(user_project):
    run = _run([sys.executable, "-m", "verigrad.checks", "check", "tests/test_own.py", "--examples", "3", "--seed", "1"], user_project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 0 failed" in run.stdout
