"""The result model, the words of a verdict, and one module per view (terminal, Markdown, JUnit, HTML, JSON)."""

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
from verigrad.checks.report.terminal import detail_lines, print_run, render, summary_line, visible, warnings_of

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
