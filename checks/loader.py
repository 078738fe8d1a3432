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


def _execute(path: str, name: str) -> ModuleType:
    """Run the file as module ``name``, its folder importable meanwhile; what its code raises becomes one LoadError line."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = os.path.dirname(os.path.abspath(path))
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise LoadError(f"{path}:{e.lineno}: syntax error: {_one_line(e.msg)}") from None
    except DerivationError as e:
        raise LoadError(f"{path}: {_one_line(e)}") from None
    except (Exception, SystemExit) as e:  # user code: the file's top level; Ctrl-C still interrupts
        raise LoadError(f"{path}: raised on import: {type(e).__name__}: {_one_line(e)}") from None
    finally:
        if added:
            sys.path.remove(folder)
    return module


def load_file(path: str) -> list[Derivation]:
    """Execute ``path`` and return its module-level derivations, in definition order."""
    if not os.path.exists(path):
        raise LoadError(f"{path}: no such file")
    if os.path.isdir(path):
        raise LoadError(f"{path}: is a directory, expected a .py file or a built-in name")
    if not path.endswith(".py"):
        raise LoadError(f"{path}: not a Python file (expected a .py file or one of: {', '.join(NAMES)})")
    module = _execute(path, "verigrad_user_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path)))
    found: dict[int, Derivation] = {}
    for value in vars(module).values():
        if isinstance(value, Derivation):
            found.setdefault(id(value), value)
    if not found:
        raise LoadError(f"{path}: defines no Derivation at module level")
    return list(found.values())


def resolve_targets(targets: list[str]) -> tuple[list[Target], list[str]]:
    """(derivations to check, one-line load errors). No target means every built-in."""
    if not targets:
        return [Target(d.name, d) for d in builtins()], []
    found: list[Target] = []
    errors: list[str] = []
    for t in targets:
        if t in NAMES:
            found.append(Target(t, builtin(t)))
            continue
        if not t.endswith(".py") and not os.path.exists(t):
            errors.append(f"{t}: not a built-in derivation ({', '.join(NAMES)}) nor a file")
            continue
        try:
            found.extend(Target(t, d) for d in load_file(t))
        except LoadError as e:
            errors.append(str(e))
    return found, errors
