"""Property-based checks that a derivation's analytic gradients agree with autograd and finite differences.

Public surface: ``check`` (one derivation → ``Report``), the result model, and the ``derivcheck`` CLI
(``checks.cli.main``). Everything else in this package is internal and may change.
"""

from ._model import REPORT_VERSION, Diagnosis, GradientReport, Report, RunReport
from ._points import Point, draw_point
from ._search import check

__all__ = ["REPORT_VERSION", "Diagnosis", "GradientReport", "Point", "Report", "RunReport", "check", "draw_point"]
