"""``assert_gradients``: a derivation check as one assertion in an ordinary test, with the terminal's failure text."""

from __future__ import annotations

from typing import Any

from verigrad.analytic import Derivation
from verigrad.checks.report import Report, Status, detail_lines, visible
from verigrad.checks.search import check


def failure_text(report: Report) -> str:
    """What went wrong with a derivation that did not pass: the terminal report's words, without colour.

    A first line naming the derivation and its verdict, then for each wrong gradient the diagnosis
    sentence, the worst entry with both values and the thresholds, the point, and the replay command.
    """
    verdict = "has a wrong gradient" if report.status == Status.FAIL else "could not be checked"
    lines = [f"derivation {visible(report.name, newline=False)!r} {verdict}"]
    lines.extend(detail_lines(report, report.seed))
    return "\n".join(lines)


def assert_gradients(derivation: Derivation, **check_kwargs: Any) -> Report:
    """Check ``derivation`` with ``verigrad.check(derivation, **check_kwargs)``; AssertionError unless it passes.

    The message is the failure text of the terminal report (diagnosis, worst entry, replay command).
    Returns the passing Report, for further assertions.
    """
    __tracebackhide__ = True  # pytest: the failure is the derivation's, not this helper's
    report = check(derivation, **check_kwargs)
    if not report.passed:
        raise AssertionError(failure_text(report))
    return report
