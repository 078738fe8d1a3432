"""The result model, the words of a verdict, and one module per view.

``model``: the result model and its named constants (Status, Blame, Kind, Problem, Mode); ``words``: the
sentences every view shares; ``terminal``, ``markdown``, ``junit``, ``html``: the views (JSON is
``RunReport.to_dict``); ``paths``: report paths checked before a run; ``files`` and ``atomic``: writing them
(each on its own, atomically, Ctrl-C deferred); ``progress``: progress on stderr.
"""

from verigrad.checks.report.files import (
    ReportWriteError,
    Written,
    deferred_interrupt,
    load_failure_report,
    stdout_to_devnull,
    write_each,
    write_reports,
)
from verigrad.checks.report.model import (
    ERROR,
    FAIL,
    NOISE_NOT_NEEDED,
    PASS,
    REPORT_VERSION,
    SKIP,
    Blame,
    Diagnosis,
    GradientReport,
    Kind,
    Mark,
    Mode,
    Point,
    Problem,
    Quantity,
    Report,
    RunReport,
    Slip,
    Status,
    TraceStep,
    Witness,
    plain_data,
)
from verigrad.checks.report.paths import KINDS, report_path_problem
from verigrad.checks.report.progress import Progress
from verigrad.checks.report.terminal import detail_lines, print_run, render, say, shown
from verigrad.checks.report.words import numpy_only_line, summary_line, visible, warnings_of

__all__ = [
    "ERROR",
    "FAIL",
    "KINDS",
    "NOISE_NOT_NEEDED",
    "PASS",
    "REPORT_VERSION",
    "SKIP",
    "Blame",
    "Diagnosis",
    "GradientReport",
    "Kind",
    "Mark",
    "Mode",
    "Point",
    "Problem",
    "Progress",
    "Quantity",
    "Report",
    "ReportWriteError",
    "RunReport",
    "Slip",
    "Status",
    "TraceStep",
    "Witness",
    "Written",
    "deferred_interrupt",
    "detail_lines",
    "load_failure_report",
    "numpy_only_line",
    "plain_data",
    "print_run",
    "render",
    "report_path_problem",
    "say",
    "shown",
    "stdout_to_devnull",
    "summary_line",
    "visible",
    "warnings_of",
    "write_each",
    "write_reports",
]
