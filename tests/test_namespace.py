"""One import name: installed, only ``verigrad`` is importable at the top level, and a user project with its own
``checks``, ``analytic`` and ``reference`` packages keeps them, under pytest with the plugin loaded and under the CLI."""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
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


def _bare_names(node: ast.AST) -> list[str]:
    """Bare folder names a node imports (``import checks``) or runs as a module: a bare name after ``-m`` in a
    list of arguments or in a command string."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module]
    elif isinstance(node, ast.List | ast.Tuple):
        words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
        names = [after for before, after in itertools.pairwise(words) if before == "-m" and isinstance(after, str)]
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        names = re.findall(r"-m ([\w.]+)", node.value)
    else:
        names = []
    return [n for n in names if n.split(".")[0] in BARE]


def test_nothing_imports_the_bare_folder_names():
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno} {name}"
        for path in _python_files()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for name in _bare_names(node)
    ]
    assert not offenders, offenders


def _imports_from(path):
    """(line, module, name) of every ``from verigrad.… import name`` (and relative import) in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "verigrad"):
            for alias in node.names:
                yield node.lineno, "." * node.level + (node.module or ""), alias.name


#: Folders whose modules may import no other module's ``_private`` name.
NO_PRIVATE_IMPORTS = ("verigrad", "checks", "analytic", "reference")


def _package_of(path):
    """The installed package a repository file belongs to: ``checks/report/words.py`` → ``verigrad.checks.report``."""
    parts = path.relative_to(ROOT).parent.parts
    return ".".join(parts if parts[0] == "verigrad" else ("verigrad", *parts))


def _private_to(module):
    """The package a module is private to (``verigrad.reference._fd`` → ``verigrad.reference``), None if public."""
    parts = module.split(".")
    first = next((k for k, part in enumerate(parts) if part.startswith("_")), None)
    return None if first is None else ".".join(parts[:first])


def test_no_private_name_crosses_a_module():
    """No ``from m import _name``, and no ``verigrad.pkg._module`` imported from outside ``pkg``."""
    offenders = []
    for folder in NO_PRIVATE_IMPORTS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            here = _package_of(path)
            for line, module, name in _imports_from(path):
                owner = None if module.startswith(".") else _private_to(module)
                crossing = owner is not None and here != owner and not here.startswith(owner + ".")
                if (name.startswith("_") and not name.startswith("__")) or crossing:
                    offenders.append(f"{path.relative_to(ROOT)}:{line} {module}.{name}")
    assert not offenders, offenders


def test_views_take_the_words_from_words_not_from_the_terminal():
    for view in ("markdown", "junit", "html", "progress"):
        sources = {module for _, module, _ in _imports_from(ROOT / "checks" / "report" / f"{view}.py")}
        assert "verigrad.checks.report.terminal" not in sources, view
        assert "verigrad.checks.report.words" in sources, view


def test_public_api_is_one_import():
    for name in verigrad.__all__:
        assert getattr(verigrad, name) is not None, name
    from verigrad import Derivation, DerivationError, Report, assert_gradients, check

    assert Derivation.__module__.startswith("verigrad.analytic")
    assert Report.__module__.startswith("verigrad.checks")
    assert callable(check) and callable(assert_gradients) and issubclass(DerivationError, Exception)
    # Named constants that compare equal to, and serialise as, the JSON report's strings.
    assert (verigrad.Status.FAIL, verigrad.Blame.ANALYTIC, verigrad.Kind.SIGN_FLIP, verigrad.Mode.AUTO) == ("fail", "analytic", "sign_flip", "auto")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built as pip builds it from a copy of the repository."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", ".hypothesis", "__pycache__"))
    out = tmp / "wheel"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("verigrad-*.whl")
    return found


def test_wheel_has_one_top_level_name(wheel):
    """The wheel holds ``verigrad`` (with the three witnesses inside) and its metadata only."""
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"verigrad", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, top
    for module in ("verigrad/__init__.py", "verigrad/analytic/__init__.py", "verigrad/reference/__init__.py", "verigrad/checks/cli.py"):
        assert module in names, module
    dist_info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(dist_info).decode().split() == ["verigrad"]


def test_wheel_holds_every_module_of_the_repository(wheel):
    """A wheel without ``verigrad/checks/report/…`` installs fine and fails on ``import verigrad``; the editable install hides it."""
    missing = sorted(set(_installed_modules()) - set(zipfile.ZipFile(wheel).namelist()))
    assert not missing, f"modules of the repository the wheel lacks (pyproject.toml [tool.setuptools] packages): {missing}"


def _installed_modules():
    """Where each of the repository's package modules lands when installed: ``checks/report/model.py`` →
    ``verigrad/checks/report/model.py``."""
    for folder in ("verigrad", *sorted(BARE)):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            yield rel if folder == "verigrad" else f"verigrad/{rel}"


USER_PACKAGES = {
    "checks/__init__.py": "ok = 'the project’s own checks'\n",
    "analytic/__init__.py": "def Derivation():\n    return 'the project’s own analytic'\n",
    "reference/__init__.py": "VALUE = 3\n",
    "tests/__init__.py": "",
    "tests/test_own.py": """
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
    """,
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


def test_plugin_under_xdist_beside_the_projects_own_packages(user_project):
    """Each worker loads the plugin in the project too, and the controller merges what they checked."""
    report = user_project / "verigrad.json"
    args = ["-p", "no:cacheprovider", "-n", "2", "--verigrad-examples", "3", "--verigrad-json", str(report), "tests"]
    run = _run([sys.executable, "-m", "pytest", *args], user_project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    assert [d["name"] for d in json.loads(report.read_text(encoding="utf-8"))["derivations"]] == ["square"]


def test_cli_checks_a_file_of_a_project_with_its_own_checks(user_project):
    run = _run([sys.executable, "-m", "verigrad.checks", "check", "tests/test_own.py", "--examples", "3", "--seed", "1"], user_project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 0 failed" in run.stdout


#: Loaded by the plugin and the command line before any check runs.
LOADED_FIRST = "import sys, verigrad, verigrad.checks.pytest_plugin, verigrad.checks.cli"
TORCH_MODULES = "sorted(m for m in sys.modules if m.split('.')[0] == 'torch')"


def test_importing_verigrad_and_its_plugin_leaves_torch_unimported():
    """A pytest run in an environment where verigrad is installed loads the plugin: it must not pay for torch."""
    run = _run([sys.executable, "-c", f"{LOADED_FIRST}; print({TORCH_MODULES})"], ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_a_check_imports_torch_where_it_first_needs_it():
    d = "verigrad.builtin('relu_regression')"
    check = f"verigrad.check({d}, at=verigrad.draw_point({d}, {{'N': 2, 'D': 2, 'M': 2}}, 0).params)"
    code = f"{LOADED_FIRST}; before = {TORCH_MODULES}; r = {check}; print(before, r.status, 'torch' in sys.modules)"
    run = _run([sys.executable, "-c", code], ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["[]", "pass", "True"]
