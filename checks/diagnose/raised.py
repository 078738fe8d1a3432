"""Gradients without numbers to compare: the verdict's own finding is the diagnosis.

``raised``: the gradients function raised (``GradientReport.problem`` is ``Problem.RAISED``; the exception
text is ``GradientReport.raised``). ``not_comparable``: the analytic gradient is missing or not numeric;
the verdict's message says which (kind ``unknown``, reason: that message).
"""

from __future__ import annotations

from verigrad.checks.diagnose.evidence import Case, on_examples
from verigrad.checks.diagnose.unknown import unconfirmed_details, unconfirmed_text
from verigrad.checks.report import Diagnosis, Kind, Problem


def raised(case: Case) -> Diagnosis | None:
    """The gradients function raised at the counterexample; confirmed on the examples where it raised too."""
    g = case.first.report
    if g.problem != Problem.RAISED:
        return None
    exc = (g.raised or "").strip()
    k, m = sum(ex.report.problem == Problem.RAISED for ex in case.given), len(case.given)
    return Diagnosis(Kind.RAISED, f"the gradient function raised {exc} ({on_examples(k, m)})", {"exception": exc}, k)


def not_comparable(case: Case) -> Diagnosis | None:
    """The analytic gradient has no numbers at the counterexample (missing, or not an array of numbers)."""
    if case.first.a is not None:
        return None
    message = case.first.report.message or ""
    return Diagnosis(Kind.UNKNOWN, f"∂f/∂{case.param}: {message}{unconfirmed_text(case)}",
                     {"reason": message, **unconfirmed_details(case)}, len(case.given))
