"""The result model, the words of a verdict, and one module per view.

``model``: the result model and its named constants (Status, Blame, Kind, Problem, Mode); ``words``: the
sentences every view shares; ``terminal``, ``markdown``, ``junit``, ``html``: the views (JSON is
``RunReport.to_dict``); ``files`` and ``atomic``: writing them; ``progress``: progress on stderr.
"""

from verigrad.checks.report.files import write_reports
from verigrad.checks.report.model import (
    ERROR,
    FAIL,
    PASS,
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
)
from verigrad.checks.report.progress import Progress
from verigrad.checks.report.terminal import detail_lines, print_run, render
from verigrad.checks.report.words import summary_line, visible, warnings_of

__all__ = [
    "ERROR",
    "FAIL",
    "PASS",
    "REPORT_VERSION",
    "Blame",
    "Diagnosis",
    "GradientReport",
    "Kind",
    "Mode",
    "Point",
    "Problem",
    "Progress",
    "Report",
    "RunReport",
    "Status",
    "detail_lines",
    "print_run",
    "render",
    "summary_line",
    "visible",
    "warnings_of",
    "write_reports",
]
