"""The terminal report: one line per gradient, then what went wrong and how to replay it.

Only what belongs to a terminal lives here: colour, column widths, indentation and printing. The words
themselves (headline, worst entry, window, summary line, ...) come from ``words``, shared by every view.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Callable
from typing import TextIO

from verigrad.checks.report.model import GradientReport, Kind, Report, RunReport, Status
from verigrad.checks.report.words import (
    facts,
    figures_point_text,
    fmt,
    gradient_point_text,
    gradient_replay,
    headline,
    names_its_gradient,
    note,
    own_points,
    point_text,
    side_message,
    slip_text,
    summary_line,
    threshold,
    trace_lines,
    visible,
    warnings_of,
    window_lines,
    worst_text,
)

_COLORS = {Status.PASS: "\033[32m", Status.FAIL: "\033[31m", Status.ERROR: "\033[33m"}
_BOLD, _RESET = "\033[1m", "\033[0m"

#: Widest cell of the summary table, in terminal columns; the details below give the full text.
MAX_CELL = 40
#: Widest cell of the table's last column, the point a row's figures are from (its sizes, inputs and seed).
MAX_POINT_CELL = 100

#: ``paint(code, text)``: text in an ANSI colour, or as it is when colour is off.
Paint = Callable[[str, str], str]


def use_color(stream: TextIO, flag: bool | None = None) -> bool:
    """Colour when forced, never under ``NO_COLOR``, else when ``stream`` is a terminal."""
    if flag is not None:
        return flag
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def _width(s: str) -> int:
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _cell(text: object, limit: int = MAX_CELL) -> str:
    s = visible(text, newline=False)
    if _width(s) <= limit:
        return s
    while _width(s) > limit - 1:
        s = s[:-1]
    return s + "…"


def _pad(s: str, width: int) -> str:
    return s + " " * (width - _width(s))


def _indent(text: str, prefix: str) -> str:
    """Continuation lines of a multi-line message, indented under the first."""
    return text.replace("\n", "\n" + prefix)


def _table(run: RunReport, paint: Paint) -> list[str]:
    """One row per gradient (one per derivation that has none), columns padded to their widest cell; the last
    says at which point the row's figures were taken (a passing gradient's most demanding one)."""
    rows = [("derivation", "param", "status", "max abs err", "max rel err", "threshold", "note", "figures at")]
    for r in run.reports:
        if not r.gradients:
            rows.append((_cell(r.name), "—", r.status, "—", "—", "—", _cell(r.message or ""), "—"))
        for g in r.gradients:
            at = _cell(figures_point_text(r, g), MAX_POINT_CELL)
            rows.append((_cell(r.name), _cell(g.param), g.status, fmt(g.max_abs_err), fmt(g.max_rel_err), fmt(threshold(g)), note(g), at))
    widths = [max(_width(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [_pad(c, w) for c, w in zip(row, widths, strict=True)]
        if n == 0:
            cells = [paint(_BOLD, c) + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)]
        else:
            cells[2] = paint(_COLORS.get(row[2], ""), row[2].upper()) + " " * (widths[2] - len(row[2]))
        lines.append("  ".join(cells).rstrip())
    return lines


def render(run: RunReport, color: bool = False) -> str:
    """The whole terminal report of a run: the table, the details of what did not pass, the seed and the summary line."""
    paint: Paint = (lambda code, s: f"{code}{s}{_RESET}") if color else (lambda code, s: s)
    lines = _table(run, paint)
    for r in run.reports:
        details = detail_lines(r, run.seed, paint)
        if details:
            lines.append("")
            lines.extend(details)
    lines.append("")
    if run.interrupted:
        lines.append("interrupted: the counts below cover the derivations checked before the interruption")
    if run.seed is not None:
        lines.append(f"seed {run.seed}")
    lines.append(summary_line(run))
    return "\n".join(lines)


def _gradient_lines(name: str, g: GradientReport, paint: Paint) -> list[str]:
    """What is wrong with one gradient: the headline, the harness's finding beside it, the worst entry, the facts, the window."""
    about = f"{name} ∂f/∂{visible(g.param)}"
    head = paint(_COLORS.get(g.status, ""), g.status.upper() + " ") + paint(_BOLD, name if names_its_gradient(g) else about)
    out = [_indent(f"{head}: {visible(headline(g))}", "  ")]
    extra = side_message(g)
    if extra:
        out.append(_indent(f"  {about}: {visible(extra)}", "    "))
    worst = worst_text(g)
    if worst:
        out.append(_indent("  " + visible(worst), "    "))
    said = facts(g)
    if g.diagnosis is not None and g.diagnosis.kind != Kind.UNKNOWN and g.diagnosis.confirmed_on > 1:
        tried = g.diagnosis.details.get("tried_on")
        of = f" of {tried}" if tried else ""
        said.append(f"diagnosis confirmed on {g.diagnosis.confirmed_on}{of} examples")
    if said:
        out.append("  " + "; ".join(said))
    out.extend("    " + w for w in window_lines(g))
    slip = slip_text(g)
    if slip:
        out.append(_indent("  " + visible(slip), "    "))
    if g.trace:
        out.append("  derivation trace at the counterexample:")
        out.extend("    " + visible(t) for t in trace_lines(g))
    return out


def _point_lines(where: str | None, replay: str | None) -> list[str]:
    """Where a failure was found and the command that replays it."""
    out = ["  " + where] if where else []
    if replay:
        out.append("  replay: " + visible(replay, newline=False))
    return out


def detail_lines(r: Report, run_seed: int | None, paint: Paint) -> list[str]:
    """What a derivation that did not pass got wrong, where, and how to replay it; then its warnings."""
    out: list[str] = []
    name = visible(r.name)
    if r.status == Status.ERROR and not r.failures:
        out.append(_indent(paint(_COLORS[Status.ERROR], "ERROR ") + paint(_BOLD, name) + ": " + visible(r.message or "(no message)"), "  "))
    separate = own_points(r)
    for g in r.failures:
        out.extend(_gradient_lines(name, g, paint))
        if separate:
            out.extend(_point_lines(gradient_point_text(r, g, run_seed), gradient_replay(g)))
    if r.status != Status.PASS and not separate:
        out.extend(_point_lines(point_text(r, run_seed), r.replay))
    for param, w in warnings_of(r):
        about = name if param is None else f"{name} ∂f/∂{visible(param)}"
        out.append(_indent(paint(_COLORS[Status.ERROR], "warning") + f" ({about}): {visible(w)}", "  "))
    return out


def print_run(run: RunReport, stream: TextIO = sys.stdout, color: bool | None = None) -> None:
    """Print the terminal report of ``run`` to ``stream`` (coloured when it is a terminal, unless told)."""
    print(render(run, use_color(stream, color)), file=stream)
