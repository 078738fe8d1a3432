"""The terminal report: one line per gradient, then what went wrong and how to replay it.

Only what belongs to a terminal lives here: colour, column widths, indentation and printing. The words
themselves (headline, worst entry, window, summary line, ...) come from ``words``, shared by every view.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from typing import TextIO

from verigrad.checks.report.model import GradientReport, Kind, Quantity, Report, RunReport, Status
from verigrad.checks.report.words import (
    facts,
    figures_point_text,
    fmt,
    gradient_point_text,
    gradient_replay,
    headline,
    names_its_gradient,
    note,
    numpy_only_line,
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

#: A piece of a terminal line: the ANSI style it is shown in ("" for none) and its text as the harness or the user
#: wrote it. Styles are the harness's alone; text never carries a control character to the terminal (``shown``).
Span = tuple[str, str]
#: A terminal line: plain text, or pieces of it in their styles.
Line = str | tuple[Span, ...]


def use_color(stream: TextIO, flag: bool | None = None) -> bool:
    """Colour when forced, never under ``NO_COLOR``, else when ``stream`` is a terminal."""
    if flag is not None:
        return flag
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def shown(line: Line, color: bool = False) -> str:
    """A line as the terminal gets it: every piece's text escaped (``visible``, newlines too: user text can never
    start a line of its own, end one with CR, or send the terminal a sequence), then styled when colour is on.
    Every line verigrad prints goes through here."""
    spans = (("", line),) if isinstance(line, str) else line
    return "".join(f"{style}{visible(text, newline=False)}{_RESET}" if color and style else visible(text, newline=False) for style, text in spans)


def say(text: str, stream: TextIO | None = None) -> None:
    """Print one line of the command's own (a usage error, a load error, a listing), shown as ``shown`` shows it."""
    print(shown(text), file=sys.stderr if stream is None else stream)


def _width(s: str) -> int:
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _cell(text: object, limit: int = MAX_CELL) -> str:
    """A table cell as it will be shown (escaped, so its width is the width printed), cut to ``limit`` columns."""
    s = visible(text, newline=False)
    if _width(s) <= limit:
        return s
    while _width(s) > limit - 1:
        s = s[:-1]
    return s + "…"


def _table(run: RunReport) -> list[Line]:
    """One row per gradient (one per derivation that has none), columns padded to their widest cell; the last
    says at which point the row's figures were taken (a passing gradient's most demanding one)."""
    rows = [("derivation", "param", "status", "max abs err", "max rel err", "abs threshold", "note", "figures at")]
    for r in run.reports:
        if not r.gradients:
            rows.append((_cell(r.name), "—", r.status, "—", "—", "—", _cell(r.message or ""), "—"))
        for g in r.gradients:
            at = _cell(figures_point_text(r, g), MAX_POINT_CELL)
            param = _cell(g.param if g.quantity == Quantity.GRADIENT else g.title)
            rows.append((_cell(r.name), param, g.status, fmt(g.max_abs_err), fmt(g.max_rel_err), fmt(threshold(g)), _cell(note(g)), at))
    widths = [max(_width(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines: list[Line] = []
    for n, row in enumerate(rows):
        styles = [_BOLD] * len(row) if n == 0 else ["", "", _COLORS.get(row[2], ""), *[""] * (len(row) - 3)]
        cells = [c if n == 0 or k != 2 else c.upper() for k, c in enumerate(row)]
        spans: list[Span] = []
        for k, (c, w, style) in enumerate(zip(cells, widths, styles, strict=True)):
            spans += [("", "  ")] if k else []
            spans += [(style, c), ("", " " * (w - _width(c)))]
        while spans and not spans[-1][1].strip():  # no trailing blanks
            spans.pop()
        lines.append(tuple(spans))
    return lines


def render(run: RunReport, color: bool = False) -> str:
    """The whole terminal report of a run: the table, the details of what did not pass, the seed and the summary line."""
    lines = _table(run)
    for r in run.reports:
        details = _details(r, run.seed)
        if details:
            lines.append("")
            lines.extend(details)
    lines.append("")
    if run.interrupted:
        lines.append("interrupted: the counts below cover the derivations checked before the interruption")
    if (numpy := numpy_only_line(run)) is not None:
        lines.append(numpy)
    if run.seed is not None:
        lines.append(f"seed {run.seed}")
    lines.append(summary_line(run))
    return "\n".join(shown(line, color) for line in lines)


def _gradient_lines(name: str, g: GradientReport) -> list[Line]:
    """What is wrong with one gradient: the headline, the harness's finding beside it, the worst entry, the facts, the window."""
    about = f"{name} {g.title}"
    head = (_COLORS.get(g.status, ""), g.status.upper() + " "), (_BOLD, name if names_its_gradient(g) else about)
    out: list[Line] = [(*head, ("", f": {headline(g)}"))]
    extra = side_message(g)
    if extra:
        out.append(f"  {about}: {extra}")
    worst = worst_text(g)
    if worst:
        out.append("  " + worst)
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
        out.append("  " + slip)
    if g.trace:
        out.append("  derivation trace at the counterexample:")
        out.extend("    " + t for t in trace_lines(g))
    return out


def _point_lines(where: str | None, replay: str | None) -> list[Line]:
    """Where a failure was found and the command that replays it."""
    out: list[Line] = ["  " + where] if where else []
    if replay:
        out.append("  replay: " + replay)
    return out


def _details(r: Report, run_seed: int | None) -> list[Line]:
    """What a derivation that did not pass got wrong, where, and how to replay it; then its warnings."""
    out: list[Line] = []
    if r.status == Status.ERROR and not r.failures:
        out.append(((_COLORS[Status.ERROR], "ERROR "), (_BOLD, r.name), ("", ": " + (r.message or "(no message)"))))
    separate = own_points(r)
    for g in r.failures:
        out.extend(_gradient_lines(r.name, g))
        if separate:
            out.extend(_point_lines(gradient_point_text(r, g, run_seed), gradient_replay(g)))
    if r.status != Status.PASS and not separate:
        out.extend(_point_lines(point_text(r, run_seed), r.replay))
    for param, w in warnings_of(r):
        about = r.name if param is None else f"{r.name} ∂f/∂{param}"
        out.append(((_COLORS[Status.ERROR], "warning"), ("", f" ({about}): {w}")))
    return out


def detail_lines(r: Report, run_seed: int | None, color: bool = False) -> list[str]:
    """The terminal's details of a derivation that did not pass (see ``render``), each line as ``shown`` shows it."""
    return [shown(line, color) for line in _details(r, run_seed)]


def print_run(run: RunReport, stream: TextIO = sys.stdout, color: bool | None = None) -> None:
    """Print the terminal report of ``run`` to ``stream`` (coloured when it is a terminal, unless told)."""
    print(render(run, use_color(stream, color)), file=stream)
