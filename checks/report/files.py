"""Write every requested report from one RunReport: each atomically, each on its own, none lost to Ctrl-C.

- Each report is written independently: an OSError writing one is one line, and the others are still written.
- Ctrl-C (SIGINT) while the reports are written is deferred until all of them are written; the caller learns
  that it came. With ``atomic``'s temporary file and rename, every requested report ends up written, or, had the
  process been killed outright, none half-written.
- A target that could not be loaded is a report of its own (``load_failure_report``), status error, so that it
  appears in every view like any derivation that could not be checked.
- ``stdout_to_devnull``: what to do once standard output is closed or broken (``head -1``), so that neither the
  reports nor the exit code depend on who reads the terminal summary.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from verigrad.checks.report.atomic import write_json, write_text
from verigrad.checks.report.model import ERROR, Report, RunReport
from verigrad.checks.report.paths import KINDS


class ReportWriteError(OSError):
    """Some requested reports could not be written (the others were); the message has one line per report."""


@dataclass
class Written:
    """What writing the reports came to: one line per report that could not be written, and whether Ctrl-C came."""

    problems: list[str]
    interrupted: bool = False


@dataclass
class _Deferred:
    received: bool = False


@contextmanager
def deferred_interrupt() -> Iterator[_Deferred]:
    """SIGINT noted, not raised, inside the block (main thread only; an ignored SIGINT stays ignored)."""
    state = _Deferred()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield state
        return

    def note(signum: int, frame: object) -> None:
        state.received = True

    signal.signal(signal.SIGINT, note)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def _render(kind: str) -> Callable[[RunReport], str]:
    if kind == "markdown":
        from verigrad.checks.report.markdown import render_markdown

        return render_markdown
    if kind == "junit":
        from verigrad.checks.report.junit import render_junit

        return render_junit
    from verigrad.checks.report.html import render_html

    return render_html


def _write_one(run: RunReport, kind: str, path: str) -> None:
    if kind == "json":
        write_json(path, run.to_dict())
    else:
        write_text(path, _render(kind)(run))


def _write_all(run: RunReport, paths: Mapping[str, str | None], prefix: str) -> list[str]:
    problems = []
    for kind in KINDS:
        path = paths.get(kind)
        if not path:
            continue
        try:
            _write_one(run, kind, path)
        except OSError as e:
            reason = " ".join(str(e.strerror or e).split())
            problems.append(f"{prefix}{kind} {path}: the report could not be written: {reason}")
    return problems


def write_each(run: RunReport, paths: Mapping[str, str | None], *, prefix: str = "--") -> Written:
    """Write the reports ``paths`` asks for (kinds in ``paths.KINDS``; None or "" means not requested).

    Ctrl-C during the writing is deferred to the end; one arriving just before the deferral began (nothing
    written yet) starts the writing again under it. ``prefix`` spells the options in the problem lines.
    """
    interrupted = False
    while True:
        try:
            with deferred_interrupt() as deferred:
                problems = _write_all(run, paths, prefix)
            return Written(problems, interrupted or deferred.received)
        except KeyboardInterrupt:
            interrupted = True


def write_reports(
    run: RunReport,
    *,
    json: str | None = None,
    markdown: str | None = None,
    junit: str | None = None,
    html: str | None = None,
) -> None:
    """Write the requested reports; then raise ReportWriteError if some could not be written, KeyboardInterrupt if
    Ctrl-C came meanwhile."""
    written = write_each(run, {"json": json, "markdown": markdown, "junit": junit, "html": html})
    if written.interrupted:
        raise KeyboardInterrupt
    if written.problems:
        raise ReportWriteError("; ".join(written.problems))


def load_failure_report(target: str, message: str) -> Report:
    """The report standing for a target that could not be loaded: named after the target, status error."""
    return Report(name=target, status=ERROR, message=" ".join(message.split()) or "(no message)", target=target)


def stdout_to_devnull() -> None:
    """Point file descriptor 1 and ``sys.stdout`` at os.devnull (standard output closed or its reader gone).

    What is still buffered is dropped, and nothing written later, by this process or at interpreter shutdown,
    raises again (the recipe of the Python documentation's note on SIGPIPE). With descriptor 1 closed at start,
    this also keeps a report's file from being opened as descriptor 1.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull == 1:  # descriptor 1 was closed: os.open made it non-inheritable, a worker process must inherit it
        os.set_inheritable(1, True)
    else:
        os.dup2(devnull, 1)
        os.close(devnull)
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # lives as long as the process
