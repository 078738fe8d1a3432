"""verigrad: proves a hand-derived gradient right, or says exactly what is wrong, where, and on the smallest example.

The public API, in one import::

    from verigrad import Derivation, check
    from verigrad import integers, booleans, one_hot, fixed   # data inputs (Derivation(data=...))
    from verigrad import positive, spd, simplex, orthogonal   # drawn through a transform (Derivation(draws=...))

    report = check(my_derivation)          # property-based search over sizes and values
    report.passed, report.to_dict()
    report.status == Status.FAIL           # statuses, blames, diagnosis kinds are named constants (StrEnum)

The three witnesses live in sub-packages: ``verigrad.analytic`` (the derivation contract, the glossary and the
built-in derivations), ``verigrad.reference`` (torch autograd in float64 and finite differences with an error
model) and ``verigrad.checks`` (the search, the verdict, the diagnosis, the reports, the CLI and the pytest
plugin). Only the names below are public; everything else may change.
"""

from verigrad.analytic import (
    NAMES,
    Derivation,
    DerivationError,
    booleans,
    builtin,
    builtins,
    fixed,
    integers,
    one_hot,
    orthogonal,
    positive,
    simplex,
    spd,
)
from verigrad.checks import (
    REPORT_VERSION,
    Blame,
    Diagnosis,
    GradientReport,
    Kind,
    Mode,
    Point,
    Problem,
    Report,
    RunReport,
    Status,
    assert_gradients,
    check,
    draw_point,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    """``gradcheck``, ``gradgradcheck``, ``GradcheckError``: torch.autograd.gradcheck's drop-in (checks/gradcheck.py),
    imported on first use with torch."""
    if name in ("gradcheck", "gradgradcheck", "GradcheckError"):
        from verigrad.checks import gradcheck as module

        return getattr(module, name)
    raise AttributeError(f"module 'verigrad' has no attribute {name!r}")


__all__ = [
    "NAMES",
    "REPORT_VERSION",
    "Blame",
    "Derivation",
    "DerivationError",
    "Diagnosis",
    "GradcheckError",
    "GradientReport",
    "Kind",
    "Mode",
    "Point",
    "Problem",
    "Report",
    "RunReport",
    "Status",
    "__version__",
    "assert_gradients",
    "booleans",
    "builtin",
    "builtins",
    "check",
    "draw_point",
    "fixed",
    "gradcheck",
    "gradgradcheck",
    "integers",
    "one_hot",
    "orthogonal",
    "positive",
    "simplex",
    "spd",
]
