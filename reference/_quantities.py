"""The reference quantities a traced derivation is compared with (checks/diagnose/slip.py): the forward's
parameters and intermediates at one point, each with ∂f/∂it — by autograd (``_intermediates``), or by
finite differences with an error bound per entry where the forward runs under NumPy only
(``_numpy_intermediates``)."""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Intermediates", "Quantity", "is_user_file"]


@dataclass(frozen=True)
class Quantity:
    """One reference quantity: a parameter or an intermediate of the forward, its value and ∂f/∂it."""

    name: str  # the forward's local variable, the parameter, or the expression's source text in parentheses
    value: np.ndarray
    grad: np.ndarray  # ∂f/∂(this quantity): autograd in float64, or finite differences
    line: int | None = None  # its line in the forward's file (None: a parameter)
    param: bool = False
    error: np.ndarray | None = None  # per entry, the bound on |grad − ∂f/∂it| of finite differences (None: autograd)


@dataclass
class Intermediates:
    """What the forward computed at the point: its quantities (parameters first), or why none could be taken."""

    quantities: list[Quantity] = field(default_factory=list)
    problem: str | None = None  # the forward raised, or f depends on no intermediate that could be taken
    cut: bool = False  # a budget was reached: later intermediates (or entries) were not kept


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    """Where the code that is not the user's lives: torch, NumPy, array-api-compat, the standard library, and
    verigrad's machinery (the objective, the checks that call the user's functions, the entry points)."""
    import array_api_compat
    import torch

    packages = [torch, np, array_api_compat, sys.modules[__package__]]
    packages += [m for name in ("verigrad", "verigrad.checks") if (m := sys.modules.get(name)) is not None]
    dirs = [os.path.dirname(os.path.abspath(m.__file__)) for m in packages if getattr(m, "__file__", None)]
    return tuple(d + os.sep for d in [*dirs, sysconfig.get_paths()["stdlib"]])


@functools.cache
def _analytic_dir() -> str:
    return os.path.dirname(os.path.abspath(sys.modules["verigrad.analytic"].__file__)) + os.sep


def is_user_file(file: str) -> bool:
    """Whether code of ``file`` is the user's: not torch's, NumPy's, array-api-compat's, the standard library's
    or verigrad's machinery — the contract's private modules (the adapters' wrappers) included; verigrad's
    built-in derivations (``analytic``'s public modules) are derivations as the user's are."""
    path = os.path.abspath(file)
    if path.startswith(_library_dirs()):
        return False
    return not (path.startswith(_analytic_dir()) and os.path.basename(path).startswith("_"))
