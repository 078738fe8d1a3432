"""The terminal report: one line per gradient, then what went wrong and how to replay it.

The helpers here (``visible``, ``fmt``, ``summary_line``, ``window_lines``, ...) are shared by the
Markdown, JUnit and HTML reports so that every report says the same thing in the same words.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Iterable
from typing import TextIO

import numpy as np

from verigrad.checks.report.model import ERROR, FAIL, PASS, GradientReport, Report, RunReport

_COLORS = {PASS: "\033[32m", FAIL: "\033[31m", ERROR: "\033[33m"}
_BOLD, _RESET = "\033[1m", "\033[0m"

#: Rows and columns of the analytic/reference window shown around the worst entry.
WINDOW = 3
#: Widest cell of the summary table, in terminal columns; the details below give the full text.
MAX_CELL = 40
#: Bidirectional-override characters: they reorder what a terminal shows, so they are made visible too.
_BIDI = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def use_color(stream: TextIO, flag: bool | None = None) -> bool:
    if flag is not None:
        return flag
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


# --- text shared by every report ----------------------------------------------------------


def visible(text: object, *, newline: bool = True) -> str:
    """``text`` as written, with control characters (and lone surrogates) shown as escapes.

    A newline is kept when ``newline`` is true, else shown as ``\\n`` (for one-line cells).
    """
    s = str(text)
    if s.isprintable() and not any(ord(c) in _BIDI for c in s):
        return s
    out = []
    for c in s:
        o = ord(c)
        if c == "\n" and newline:
            out.append(c)
        elif unicodedata.category(c) in ("Cc", "Cs") or o in _BIDI:
            out.append(_SHORT.get(c) or (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"))
        else:
            out.append(c)
    return "".join(out)


def fmt(x: float | None) -> str:
    """An error or threshold: three significant digits, ``—`` when absent."""
    return "—" if x is None else f"{x:.2e}"


def value(x: float | None) -> str:
    """A gradient entry: enough digits to compare two of them by eye."""
    return "—" if x is None else f"{x:.6g}"


def index_text(param: str, index: Iterable[int] | None) -> str:
    return param if index is None else f"{param}[{', '.join(map(str, index))}]"


def threshold(g: GradientReport) -> float | None:
    return g.threshold.get("analytic_vs_autograd")


def note(g: GradientReport) -> str:
    """Diagnosis kind, blame and nondifferentiable count, as one short cell."""
    parts = []
    if g.diagnosis is not None:
        parts.append(g.diagnosis.kind)
    if g.blame:
        parts.append(f"blame {g.blame}")
    if g.nondifferentiable:
        parts.append(f"{len(g.nondifferentiable)} nondiff")
    return "; ".join(parts)


def headline(g: GradientReport) -> str:
    """The one sentence that says what is wrong with a failing gradient."""
    if g.diagnosis is not None and g.diagnosis.sentence:
        return g.diagnosis.sentence
    if g.message:
        return g.message
    return disagreement(g)


def nondiff_text(g: GradientReport) -> str:
    n = len(g.nondifferentiable)
    return f"{n} nondifferentiable entr{'y' if n == 1 else 'ies'} not judged"


def disagreement(g: GradientReport) -> str:
    return f"{g.mismatches} of {g.entries} entr{'y' if g.entries == 1 else 'ies'} disagree{'s' if g.mismatches == 1 and g.entries == 1 else ''}"


def worst_text(g: GradientReport) -> str | None:
    """``worst entry W2[1, 0]: analytic …, reference …; abs err … (threshold …), rel err …``."""
    if g.worst_index is None or g.analytic_value is None:
        return None
    return (
        f"worst entry {index_text(g.param, g.worst_index)}: analytic {value(g.analytic_value)}, "
        f"reference {value(g.reference_value)}; abs err {fmt(g.max_abs_err)} (threshold {fmt(threshold(g))}), "
        f"rel err {fmt(g.max_rel_err)}"
    )


def point_text(r: Report, run_seed: int | None = None) -> str | None:
    """Sizes of the reported point and the seeds it came from."""
    parts = []
    if r.shapes:
        parts.append("at " + ", ".join(f"{k}={v}" for k, v in r.shapes.items()))
    if r.point_seed is not None:
        parts.append(f"point seed {r.point_seed}")
    seed = r.seed if r.seed is not None else run_seed
    if seed is not None:
        parts.append(f"run seed {seed}")
    return "; ".join(parts) or None


def counts(run: RunReport) -> tuple[int, int, int]:
    passed = sum(r.status == PASS for r in run.reports)
    failed = sum(r.status == FAIL for r in run.reports)
    return passed, failed, len(run.reports) - passed - failed


def summary_line(run: RunReport) -> str:
    """``N passed, N failed`` (``, N errors`` when there are any): the line CI reads."""
    passed, failed, errors = counts(run)
    return f"{passed} passed, {failed} failed" + (f", {errors} errors" if errors else "")


def warnings_of(r: Report) -> list[tuple[str | None, str]]:
    """(param or None, warning) for the derivation and each of its gradients."""
    return [(None, w) for w in r.warnings] + [(g.param, w) for g in r.gradients for w in g.warnings]


# --- the window around the worst entry ------------------------------------------------------


def _as_2d(a: np.ndarray, index: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, int], str]:
    """The 2-D slice holding ``index`` (leading indices fixed), the index within it, and a label for the slice."""
    if a.ndim == 1:
        return a[None, :], (0, index[0]), ""
    lead = tuple(index[:-2])
    label = f"[{', '.join(map(str, lead))}, :, :] " if lead else ""
    return a[lead], (index[-2], index[-1]), label


def _range_text(what: str, span: range, length: int) -> str:
    first, last = span[0], span[-1]
    return f"{what} {first} of {length}" if first == last else f"{what}s {first}–{last} of {length}"


def _span(center: int, length: int, size: int = WINDOW) -> range:
    start = max(0, min(center - size // 2, length - size))
    return range(start, min(length, start + size))


def window_lines(g: GradientReport) -> list[str]:
    """Analytic beside reference in a window of at most WINDOW × WINDOW entries around the worst entry.

    Empty when there is nothing to compare entry by entry (a scalar, a missing or misshapen gradient).
    """
    a, r, ix = g.analytic, g.reference, g.worst_index
    if a is None or r is None or ix is None or np.shape(a) != np.shape(r) or np.ndim(a) == 0:
        return []
    a2, (i, j), label = _as_2d(np.asarray(a, dtype=np.float64), ix)
    r2 = _as_2d(np.asarray(r, dtype=np.float64), ix)[0]
    m2 = None if g.nondiff_mask is None or np.shape(g.nondiff_mask) != np.shape(a) else _as_2d(np.asarray(g.nondiff_mask), ix)[0]
    rows, cols = _span(i, a2.shape[0]), _span(j, a2.shape[1])

    def cell(arr: np.ndarray, p: int, q: int) -> str:
        mark = "*" if (p, q) == (i, j) else ("~" if m2 is not None and m2[p, q] else " ")
        return f"{arr[p, q]:.6g}{mark}"

    blocks = [[[cell(arr, p, q) for q in cols] for p in rows] for arr in (a2, r2)]
    width = max(11, *(len(c) for b in blocks for row in b for c in row))
    row_w = len(str(rows[-1])) + (2 if a.ndim > 1 else 0)
    gap = "   "

    def line(head: str, b0: list[str], b1: list[str]) -> str:
        return f"{head:>{row_w}} " + " ".join(c.rjust(width) for c in b0) + gap + " ".join(c.rjust(width) for c in b1)

    block_w = len(cols) * (width + 1) - 1
    rows_txt = _range_text("row", rows, a2.shape[0]) + ", " if a.ndim > 1 else ""
    out = [
        f"{label}{rows_txt}{_range_text('col', cols, a2.shape[1])}  (* worst entry"
        + (", ~ nondifferentiable)" if m2 is not None and m2[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].any() else ")"),
        " " * (row_w + 1) + "analytic".rjust(block_w) + gap + "reference".rjust(block_w),
        line("", [str(q) + " " for q in cols], [str(q) + " " for q in cols]),
    ]
    for k, p in enumerate(rows):
        out.append(line(f"[{p}]" if a.ndim > 1 else "", blocks[0][k], blocks[1][k]))
    return [x.rstrip() for x in out]


# --- the terminal itself ---------------------------------------------------------------------


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


def render(run: RunReport, color: bool = False) -> str:
    paint = (lambda code, s: f"{code}{s}{_RESET}") if color else (lambda code, s: s)
    rows = [("derivation", "param", "status", "max abs err", "max rel err", "threshold", "note")]
    for r in run.reports:
        if not r.gradients:
            rows.append((_cell(r.name), "—", r.status, "—", "—", "—", _cell(r.message or "")))
        for g in r.gradients:
            rows.append((_cell(r.name), _cell(g.param), g.status, fmt(g.max_abs_err), fmt(g.max_rel_err), fmt(threshold(g)), note(g)))
    widths = [max(_width(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [_pad(c, w) for c, w in zip(row, widths, strict=True)]
        if n == 0:
            cells = [paint(_BOLD, c) + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)]
        else:
            cells[2] = paint(_COLORS.get(row[2], ""), row[2].upper()) + " " * (widths[2] - len(row[2]))
        lines.append("  ".join(cells).rstrip())
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


def detail_lines(r: Report, run_seed: int | None, paint) -> list[str]:
    out: list[str] = []
    name = visible(r.name)
    if r.status == ERROR and not r.failures:
        out.append(_indent(paint(_COLORS[ERROR], "ERROR ") + paint(_BOLD, name) + ": " + visible(r.message or "(no message)"), "  "))
    for g in r.failures:
        sentence = headline(g)
        about = f"{name} ∂f/∂{visible(g.param)}"
        # The diagnosis sentence usually starts by naming the gradient; then the header need not.
        head = paint(_COLORS.get(g.status, ""), g.status.upper() + " ") + paint(_BOLD, name if sentence.startswith(f"∂f/∂{g.param} ") else about)
        out.append(_indent(f"{head}: {visible(sentence)}", "  "))
        if g.message and g.message not in sentence:  # the harness's own finding, beside the diagnosis
            out.append(_indent(f"  {about}: {visible(g.message)}", "    "))
        worst = worst_text(g)
        if worst:
            out.append(_indent("  " + visible(worst), "    "))
        facts = [disagreement(g)] if g.mismatches and headline(g) != disagreement(g) else []
        if g.blame:
            facts.append(f"blame: {g.blame}")
        if g.nondifferentiable:
            facts.append(nondiff_text(g))
        if g.diagnosis is not None and g.diagnosis.confirmed_on > 1:
            facts.append(f"diagnosis confirmed on {g.diagnosis.confirmed_on} examples")
        if facts:
            out.append("  " + "; ".join(facts))
        out.extend("    " + w for w in window_lines(g))
    if r.status != PASS:
        where = point_text(r, run_seed)
        if where:
            out.append("  " + where)
        if r.replay:
            out.append("  replay: " + visible(r.replay, newline=False))
    for param, w in warnings_of(r):
        about = name if param is None else f"{name} ∂f/∂{visible(param)}"
        out.append(_indent(paint(_COLORS[ERROR], "warning") + f" ({about}): {visible(w)}", "  "))
    return out


def print_run(run: RunReport, stream: TextIO = sys.stdout, color: bool | None = None) -> None:
    print(render(run, use_color(stream, color)), file=stream)
