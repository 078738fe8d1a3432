"""Find derivations: built-in names, or ``.py`` files whose module-level ``Derivation`` objects are checked.

Loading a file executes it, as pytest does with test files.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from types import ModuleType

from verigrad.analytic import NAMES, Derivation, DerivationError, builtin, builtins


class LoadError(Exception):
    """A target could not be loaded; the message is one line naming it."""


@dataclass
class Target:
    label: str  # what the user wrote (builtin name or path)
    derivation: Derivation


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def package_of(path: str) -> tuple[str, str] | None:
    """(root folder, dotted module name) of a file inside a package, found as pytest finds it: the folders
    up from the file that hold an ``__init__.py`` are the package, the first that does not is the root to
    import it from (``tests/test_mine.py`` beside ``tests/__init__.py`` is ``tests.test_mine``). None for a
    file outside any package, or one whose path is not a dotted name."""
    folder, file = os.path.split(os.path.abspath(path))
    parts = [os.path.splitext(file)[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, package = os.path.split(folder)
        parts.insert(0, package)
    if len(parts) == 1 or parts[-1] == "__init__" or not all(p.isidentifier() for p in parts):
        return None
    return folder, ".".join(parts)


def _from_file(path: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _import(path: str, name: str) -> ModuleType:
    """The package module ``name``, imported (its packages first, as pytest imports them), if that is ``path``;
    else ``path`` run as a module of its own."""
    module = importlib.import_module(name)
    if os.path.realpath(getattr(module, "__file__", "") or "") == os.path.realpath(path):
        return module
    return _from_file(path, _own_name(path))


def _own_name(path: str) -> str:
    return "verigrad_user_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))


def _execute(path: str) -> ModuleType:
    """Run the file as a module — as its package's module, with the package's root importable, when it is in
    one (so its relative and absolute imports of its package work as under pytest), else as a module of its
    own with its folder importable; what its code raises becomes one LoadError line."""
    package = package_of(path)
    folder = package[0] if package else os.path.dirname(os.path.abspath(path))
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        return _import(path, package[1]) if package else _from_file(path, _own_name(path))
    except LoadError:
        raise
    except SyntaxError as e:
        raise LoadError(f"{path}:{e.lineno}: syntax error: {_one_line(e.msg)}") from None
    except DerivationError as e:
        raise LoadError(f"{path}: {_one_line(e)}") from None
    except (Exception, SystemExit) as e:  # user code: the file's top level; Ctrl-C still interrupts
        raise LoadError(f"{path}: raised on import: {type(e).__name__}: {_one_line(e)}") from None
    finally:
        if added:
            sys.path.remove(folder)


def target_problem(target: str) -> str | None:
    """Why ``target`` cannot be loaded, found without executing anything (None: a built-in, or a file to load)."""
    if target in NAMES:
        return None
    if not target.endswith(".py") and not os.path.exists(target):
        return f"{target}: not a built-in derivation ({', '.join(NAMES)}) nor a file"
    if not os.path.exists(target):
        return f"{target}: no such file"
    if os.path.isdir(target):
        return f"{target}: is a directory, expected a .py file or a built-in name"
    if not target.endswith(".py"):
        return f"{target}: not a Python file (expected a .py file or one of: {', '.join(NAMES)})"
    if not os.path.isfile(target):  # a FIFO or a device: reading it could block or never end
        return f"{target}: not a regular file"
    return None


def load_file(path: str) -> list[Derivation]:
    """Execute ``path`` and return its module-level derivations, in definition order."""
    problem = target_problem(path)
    if problem:
        raise LoadError(problem)
    module = _execute(path)
    found: dict[int, Derivation] = {}
    for value in vars(module).values():
        if isinstance(value, Derivation):
            found.setdefault(id(value), value)
    if not found:
        raise LoadError(f"{path}: defines no Derivation at module level")
    return list(found.values())


def load_binding(path: str, module: str, binding: str) -> Derivation:
    """The derivation a test module binds to ``binding``: the module imported by its name when that finds the
    same file (as pytest imported it, package and relative imports included), else executed from its file."""
    try:
        found = importlib.import_module(module)
    except Exception:  # user code: the module's top level, or a name importable only the way pytest set it up
        found = None
    same = found is not None and os.path.realpath(getattr(found, "__file__", "") or "") == os.path.realpath(path)
    value = getattr(found if same else _execute(path), binding, None)
    if not isinstance(value, Derivation):
        raise LoadError(f"{path}: {binding} is not a Derivation when the module is loaded again")
    return value


def load_target(target: str) -> list[Derivation]:
    """The derivations of a built-in name or a file (executed); LoadError with one line if there are none."""
    if target in NAMES:
        return [builtin(target)]
    return load_file(target)


def resolve_targets(targets: list[str]) -> tuple[list[Target], list[str]]:
    """(derivations to check, one-line load errors), loaded in this process. No target means every built-in."""
    if not targets:
        return [Target(d.name, d) for d in builtins()], []
    found: list[Target] = []
    errors: list[str] = []
    for t in targets:
        try:
            found.extend(Target(t, d) for d in load_target(t))
        except LoadError as e:
            errors.append(str(e))
    return found, errors
