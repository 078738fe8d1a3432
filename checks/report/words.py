"""The words of a verdict: the sentences and formatted pieces every view (terminal, Markdown, JUnit, HTML) shares.

A view decides layout and markup; what a verdict *says* — the headline of a failing gradient, its worst
entry, the window of values around it, the point and its seeds, the summary line CI reads — is written
here once, so every report says the same thing in the same words.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

import numpy as np

from verigrad.checks.report.inputs import inputs_words
from verigrad.checks.report.model import GradientReport, Mark, Report, RunReport, Status, Witness

#: Rows and columns of the analytic/reference window shown around the worst entry.
WINDOW = 3
#: Bidirectional controls and marks: they reorder what a terminal or a log viewer shows, so they are made visible too.
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
#: Unicode categories shown as escapes: controls (C0, DEL and C1, NEL U+0085 among them: each can end a line or
#: start a terminal sequence), lone surrogates, and the line and paragraph separators U+2028 and U+2029.
_HIDDEN = frozenset(["Cc", "Cs", "Zl", "Zp"])
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def visible(text: object, *, newline: bool = True) -> str:
    """``text`` as written, with every character that can end a line or steer a terminal shown as an escape:
    control characters (ESC of a terminal sequence, CR, NEL, ...), U+2028/U+2029, bidirectional controls and
    lone surrogates. Showing an escape again changes nothing.

    A newline is kept when ``newline`` is true (a multi-line field of a structured report), else shown as
    ``\\n``: a printed line, where user text must never start a line of its own.
    """
    s = str(text)
    if s.isprintable() and not any(ord(c) in _BIDI for c in s):
        return s
    out = []
    for c in s:
        o = ord(c)
        if c == "\n" and newline:
            out.append(c)
        elif unicodedata.category(c) in _HIDDEN or o in _BIDI:
            out.append(_SHORT.get(c) or (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"))
        else:
            out.append(c)
    return "".join(out)


# --- numbers and names ----------------------------------------------------------------------


def fmt(x: float | None) -> str:
    """An error or threshold: three significant digits, ``—`` when absent."""
    return "—" if x is None else f"{x:.2e}"


def value(x: float | None) -> str:
    """A gradient entry: enough digits to compare two of them by eye."""
    return "—" if x is None else f"{x:.6g}"


def index_text(param: str, index: Iterable[int] | None) -> str:
    """``W2[1, 0]``, or the parameter alone without an index."""
    return param if index is None else f"{param}[{', '.join(map(str, index))}]"


def threshold(g: GradientReport) -> float | None:
    """The threshold a gradient's analytic values were judged against (analytic vs autograd)."""
    return g.threshold.get("analytic_vs_autograd")


# --- one gradient ---------------------------------------------------------------------------


def note(g: GradientReport) -> str:
    """Diagnosis kind, blame and nondifferentiable count, as one short cell."""
    parts = []
    if g.diagnosis is not None:
        parts.append(g.diagnosis.kind)
    if g.blame:
        parts.append(f"blame {g.blame}")
    if g.nondifferentiable:
        parts.append(f"{len(g.nondifferentiable)} nondiff")
    if g.witness != Witness.AUTOGRAD:
        parts.append(witness_note(g))
    return "; ".join(parts)


def witness_note(g: GradientReport) -> str:
    """What a gradient without autograd was judged against, and the smallest error that could have been seen."""
    seen = f", sees {g.resolution:.0e}" if g.resolution is not None else ""
    return f"vs {g.witness}{seen}"


def numpy_only_line(run: RunReport) -> str | None:
    """One line for every derivation of the run whose forward runs under NumPy only (None when there is none)."""
    names = [r.name for r in run.reports if not r.autograd_available]
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"no autograd for {shown} (NumPy only): each gradient judged against the complex step, or finite differences"
        " where the note says so (sees: the smallest error relative to max|reference| it lets through); give torch_forward= for autograd"
    )


def _has_sentence(g: GradientReport) -> bool:
    return g.diagnosis is not None and bool(g.diagnosis.sentence)


def headline(g: GradientReport) -> str:
    """The one sentence that says what is wrong with a failing gradient."""
    if _has_sentence(g):
        return g.diagnosis.sentence
    if g.message:
        return g.message
    return disagreement(g)


def headline_is_disagreement(g: GradientReport) -> bool:
    """True when the headline is the bare count of disagreeing entries (no diagnosis sentence, no message)."""
    return not _has_sentence(g) and not g.message


def names_its_gradient(g: GradientReport) -> bool:
    """Whether the headline opens by naming the gradient (``∂f/∂W has …``), so a view need not name it again.

    A question of wording only: whether to write ∂f/∂W once or twice; no verdict depends on it.
    """
    return _has_sentence(g) and g.diagnosis.names_param


def side_message(g: GradientReport) -> str | None:
    """The harness's own finding on a gradient (its ``message``), when the diagnosis sentence headlining it says
    something else; None when the headline already is that finding."""
    if _has_sentence(g) and g.message and g.message != g.diagnosis.sentence:
        return g.message
    return None


def nondiff_text(g: GradientReport) -> str:
    n = len(g.nondifferentiable)
    return f"{n} nondifferentiable entr{'y' if n == 1 else 'ies'} not judged"


def disagreement(g: GradientReport) -> str:
    """``k of n entries disagree`` (``1 of 1 entry disagrees``)."""
    return f"{g.mismatches} of {g.entries} entr{'y' if g.entries == 1 else 'ies'} disagree{'s' if g.mismatches == 1 and g.entries == 1 else ''}"


def facts(g: GradientReport) -> list[str]:
    """The short facts beside the headline: the disagreement count (unless it is the headline), blame, nondifferentiable entries."""
    out = [disagreement(g)] if g.mismatches and not headline_is_disagreement(g) else []
    if g.blame:
        out.append(f"blame: {g.blame}")
    if g.nondifferentiable:
        out.append(nondiff_text(g))
    return out


def worst_text(g: GradientReport) -> str | None:
    """``worst entry W2[1, 0]: analytic …, reference …; abs err … (threshold …), rel err …``."""
    if g.worst_index is None or g.analytic_value is None:
        return None
    return (
        f"worst entry {index_text(g.param, g.worst_index)}: analytic {value(g.analytic_value)}, "
        f"reference {value(g.reference_value)}; abs err {fmt(g.max_abs_err)} (threshold {fmt(threshold(g))}), "
        f"rel err {fmt(g.max_rel_err)}"
    )


# --- one derivation, one run ----------------------------------------------------------------


def _point_parts(shapes: dict[str, int], point_seed: int | None, inputs: dict[str, Any] | None) -> list[str]:
    parts = [", ".join(f"{k}={v}" for k, v in shapes.items())] if shapes else []
    parts += inputs_words(inputs or {})
    if point_seed is not None:
        parts.append(f"point seed {point_seed}")
    return parts


def _point_words(shapes: dict[str, int], point_seed: int | None, seed: int | None, inputs: dict[str, Any] | None = None) -> str | None:
    parts = _point_parts(shapes, point_seed, inputs)
    if shapes:
        parts[0] = "at " + parts[0]
    if seed is not None:
        parts.append(f"run seed {seed}")
    return "; ".join(parts) or None


def point_text(r: Report, run_seed: int | None = None) -> str | None:
    """Sizes of the reported point and the seeds it came from."""
    inputs = {"hyper": r.hyper, "data": r.data, "forward_seed": r.forward_seed}
    return _point_words(r.shapes, r.point_seed, r.seed if r.seed is not None else run_seed, inputs)


def own_points(r: Report) -> bool:
    """Whether the failing gradients of ``r`` were found at different points: then each is shown at its own
    point, with its own replay, and the derivation's point is not repeated after them."""
    here = (r.shapes, r.point_seed, inputs_words({"hyper": r.hyper, "data": r.data, "forward_seed": r.forward_seed}))
    there = lambda c: (c["shapes"], c["seed"], inputs_words(c))
    return any(g.counterexample is not None and there(g.counterexample) != here for g in r.failures)


def gradient_point_text(r: Report, g: GradientReport, run_seed: int | None = None) -> str | None:
    """Sizes and seeds of the point where ``g`` was found failing (None: it has no point of its own)."""
    c = g.counterexample
    if c is None:
        return None
    return _point_words(c["shapes"], c["seed"], r.seed if r.seed is not None else run_seed, c)


def gradient_replay(g: GradientReport) -> str | None:
    """The command that replays the point where ``g`` was found failing."""
    return None if g.counterexample is None else g.counterexample.get("replay")


def _figures_point(r: Report, g: GradientReport) -> dict[str, Any]:
    """The point ``g``'s figures were taken at, as a counterexample is written: a passing gradient's most demanding
    point (``figures_at``), a failing one's own counterexample, else the report's point."""
    here = {"shapes": r.shapes, "seed": r.point_seed, "hyper": r.hyper, "data": r.data, "forward_seed": r.forward_seed, "replay": r.replay}
    return g.figures_at or g.counterexample or here


def figures_point_text(r: Report, g: GradientReport) -> str:
    """``N=3, D=5; point seed 12``: where a row's figures (errors, threshold, worst entry) were taken; ``—`` if unknown."""
    c = _figures_point(r, g)
    return "; ".join(_point_parts(c["shapes"], c["seed"], c)) or "—"


def figures_replay(r: Report, g: GradientReport) -> str | None:
    """The command that replays the point a row's figures were taken at (None: none was drawn by the search)."""
    return _figures_point(r, g).get("replay")


def counts(run: RunReport) -> tuple[int, int, int]:
    """(passed, failed, could not be checked) derivations; skipped ones are none of these."""
    passed = sum(r.status == Status.PASS for r in run.reports)
    failed = sum(r.status == Status.FAIL for r in run.reports)
    skipped = sum(r.status == Status.SKIP for r in run.reports)
    return passed, failed, len(run.reports) - passed - failed - skipped


def summary_line(run: RunReport) -> str:
    """``N passed, N failed`` (``, N errors``, ``, N skipped`` when there are any): the line CI reads."""
    passed, failed, errors = counts(run)
    skipped = sum(r.status == Status.SKIP for r in run.reports)
    return f"{passed} passed, {failed} failed" + (f", {errors} errors" if errors else "") + (f", {skipped} skipped" if skipped else "")


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


# --- the slip and the derivation trace ---------------------------------------------------------------

#: How a step of the derivation trace is marked.
MARKS = {Mark.RIGHT: "✓", Mark.WRONG: "✗", Mark.UNCHECKED: "·"}
#: Widest source text of a trace step; longer statements are cut with an ellipsis.
TRACE_SOURCE = 60


def slip_text(g: GradientReport) -> str | None:
    """``slip: line 23 `…` is −1 × ∂f/∂Y_pred; …``, or why no line is named (None for a gradient never traced)."""
    if g.slip is not None:
        return f"slip: {g.slip.sentence}"
    if g.slip_reason:
        return f"no slip named: {g.slip_reason}"
    return None


def matched_text(mark: Mark, matched: str) -> str:
    """What a trace step matched, as the trace shows it."""
    if mark == Mark.RIGHT:
        return f"= {matched}"
    if mark == Mark.WRONG:
        return matched
    return f"({matched})" if matched else "matches no reference quantity"


def trace_rows(g: GradientReport) -> list[tuple[str, str, str, str]]:
    """(mark, ``line N``, source, what it matched) for each step of ``g``'s derivation trace."""
    rows = []
    for t in g.trace:
        source = t.source if len(t.source) <= TRACE_SOURCE else t.source[: TRACE_SOURCE - 1] + "…"
        at = g.slip is not None and t.line == g.slip.line and t.file == g.slip.file
        rows.append((MARKS[t.mark], f"line {t.line}", source, matched_text(t.mark, t.matched) + ("   ← slip" if at else "")))
    return rows


def trace_lines(g: GradientReport) -> list[str]:
    """The derivation trace as aligned text lines (terminal, Markdown code block); [] without one."""
    rows = trace_rows(g)
    if not rows:
        return []
    wl = max(len(r[1]) for r in rows)
    ws = max(len(r[2]) for r in rows)
    return [f"{m} {line:<{wl}}  {src:<{ws}}  {what}".rstrip() for m, line, src, what in rows]

