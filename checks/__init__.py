"""The search, the verdict, the diagnosis, the reports and the entry points (CLI, pytest plugin).

Arranged by meaning:

* ``verdict/``  — the one judge: thresholds with their reasons, the three-way verdict per entry;
* ``diagnose/`` — what kind of mistake a failing gradient shows;
* ``search/``   — points and draws, the hypothesis search, replay, the example database;
* ``report/``   — the result model, the words of a verdict, one module per view;
* ``cli.py``, ``pytest_plugin.py``, ``assertion.py`` — the entry points; ``loader.py`` finds derivations in files,
  ``options.py`` validates command-line numbers, ``limits.py`` bounds time and memory.

Public surface: the names below (re-exported by ``verigrad``).
"""

from verigrad.checks.assertion import assert_gradients
from verigrad.checks.report import REPORT_VERSION, Blame, Diagnosis, GradientReport, Kind, Mode, Point, Problem, Report, RunReport, Status
from verigrad.checks.search import check, draw_point

__all__ = [
    "REPORT_VERSION",
    "Blame",
    "Diagnosis",
    "GradientReport",
    "Kind",
    "Mode",
    "Point",
    "Problem",
    "Report",
    "RunReport",
    "Status",
    "assert_gradients",
    "check",
    "draw_point",
]
