"""The Markdown report, written to be pasted into a pull-request comment.

Everything user-provided (derivation and parameter names, exception messages, warnings) goes
through ``escape``, so a name like ``<script>`` or ``a|b`` cannot add markup or break the table.
"""

from __future__ import annotations

import re

from verigrad.checks.report.model import GradientReport, Report, RunReport, Status
from verigrad.checks.report.words import (
    counts,
    facts,
    figures_point_text,
    fmt,
    gradient_point_text,
    gradient_replay,
    headline,
    index_text,
    note,
    numpy_only_line,
    own_points,
    point_text,
    side_message,
    slip_text,
    summary_line,
    threshold,
    trace_lines,
    value,
    visible,
    warnings_of,
    window_lines,
)

_ICON = {Status.PASS: "✅", Status.FAIL: "❌", Status.ERROR: "⚠️", Status.SKIP: "⏭️"}
#: Failures detailed at most; a pull-request comment has a size limit and the JSON report has the rest.
MAX_DETAILS = 20
#: Characters that would start markup; escaped with a backslash (valid for any ASCII punctuation).
_BACKSLASHED = set("\\*_[]~|$")
#: A replay command holding any of these is not put in a code block, where no escaping is possible.
_INERT_IN_TEXT = frozenset("<>&`\n")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "`": "&#96;", "\n": "<br>"}


def escape(text: object) -> str:
    """User text as inert Markdown: no HTML, no code spans, no emphasis, links or table breaks."""
    out = []
    for c in visible(text):
        if c in _ENTITIES:
            out.append(_ENTITIES[c])
        elif c in _BACKSLASHED:
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def code_block(text: str, info: str = "") -> list[str]:
    """A fenced block that no content can close: the fence is longer than any run of backticks inside."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, visible(text), fence]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(run: RunReport) -> list[str]:
    lines = [
        _row(["", "derivation", "param", "max abs err", "max rel err", "abs threshold", "note", "figures at"]),
        _row(["---"] * 3 + ["--:"] * 3 + ["---"] * 2),
    ]
    for r in run.reports:
        status = f"{_ICON.get(r.status, '')} {r.status}"
        if not r.gradients:
            lines.append(_row([status, escape(r.name), "—", "—", "—", "—", escape(r.message or ""), "—"]))
        for g in r.gradients:
            mark = f"{_ICON.get(g.status, '')} {g.status}"
            figures = [fmt(g.max_abs_err), fmt(g.max_rel_err), fmt(threshold(g))]
            cells = [mark, escape(r.name), escape(g.param), *figures, escape(note(g)), escape(figures_point_text(r, g))]
            lines.append(_row(cells))
    return lines


def _gradient(r: Report, g: GradientReport) -> list[str]:
    out = [f"#### {_ICON.get(g.status, '')} {escape(r.name)} — {escape(g.title)}", "", escape(headline(g)), ""]
    extra = side_message(g)
    if extra:
        out += [escape(extra), ""]
    if g.worst_index is not None and g.analytic_value is not None:
        out.append(
            f"- worst entry {escape(index_text(g.param, g.worst_index))}: analytic `{value(g.analytic_value)}`, "
            f"reference `{value(g.reference_value)}`"
        )
        out.append(f"- abs err `{fmt(g.max_abs_err)}` (threshold `{fmt(threshold(g))}`), rel err `{fmt(g.max_rel_err)}`")
    said = facts(g)
    if said:
        out.append("- " + escape("; ".join(said)))
    window = window_lines(g)
    if window:
        out += ["", *code_block("\n".join(window), "text")]
    slip = slip_text(g)
    if slip:
        out += ["", escape(slip)]
    if g.trace:
        out += ["", "Derivation trace at the counterexample:", "", *code_block("\n".join(trace_lines(g)), "text")]
    return [*out, ""]


def _derivation(r: Report, run_seed: int | None, budget: int) -> tuple[list[str], int]:
    out: list[str] = []
    if r.status == Status.ERROR and not r.failures:
        out += [f"#### {_ICON[Status.ERROR]} {escape(r.name)} could not be checked", "", escape(r.message or "(no message)"), ""]
    separate = own_points(r)
    for g in r.failures:
        if budget <= 0:
            break
        out += _gradient(r, g)
        if separate:
            out += _point(gradient_point_text(r, g, run_seed), gradient_replay(g))
        budget -= 1
    if r.status in (Status.FAIL, Status.ERROR) and not separate:
        out += _point(point_text(r, run_seed), r.replay)
    return out, budget


def _point(where: str | None, replay: str | None) -> list[str]:
    """Where a failure was found, as a sentence, and the command that replays it."""
    out = [escape(where[0].upper() + where[1:]) + ".", ""] if where else []
    if replay and _INERT_IN_TEXT.isdisjoint(replay):
        out += ["Replay:", "", *code_block(replay, "sh"), ""]
    elif replay:  # a name that would be markup outside a code block: shown escaped, still copyable as rendered
        out += [f"Replay: {escape(replay)}", ""]
    return out


def _warnings(run: RunReport) -> list[str]:
    """Every warning of the run, folded under one ``<details>``; nothing when there are none."""
    warns = [(r, p, w) for r in run.reports for p, w in warnings_of(r)]
    if not warns:
        return []
    lines = ["<details><summary>Warnings</summary>", ""]
    for r, p, w in warns:
        about = escape(r.name) if p is None else f"{escape(r.name)} ∂f/∂{escape(p)}"
        lines.append(f"- {about}: {escape(w)}")
    return [*lines, "", "</details>", ""]


def render_markdown(run: RunReport) -> str:
    """The run as a Markdown comment: headline, table, details of what failed (at most MAX_DETAILS), warnings."""
    passed, failed, errors = counts(run)
    worst = Status.FAIL if failed else Status.ERROR if errors or not run.reports else Status.SKIP  # not passed: why
    icon = _ICON[Status.PASS] if run.passed else _ICON[worst]
    lines = [f"### {icon} verigrad: {summary_line(run)}", ""]
    about = []
    if run.seed is not None:
        about.append(f"Seed `{run.seed}`.")
    if run.interrupted:
        about.append("**Interrupted**: only the derivations listed were checked.")
    if (numpy := numpy_only_line(run)) is not None:
        about.append(escape(numpy) + ".")
    if about:
        lines += [" ".join(about), ""]
    if not run.reports:
        return "\n".join([*lines, "Nothing was checked.", ""])
    lines += [*_table(run), ""]
    budget = MAX_DETAILS
    for r in run.reports:
        details, budget = _derivation(r, run.seed, budget)
        lines += details
    left = sum(len(r.failures) for r in run.reports) - MAX_DETAILS
    if left > 0:
        lines += [f"… and {left} more failing gradients: see the JSON report.", ""]
    warns = _warnings(run)
    lines += warns
    if passed == len(run.reports) and not warns and numpy_only_line(run) is None:
        lines += [f"All {passed} derivations agree with autograd and finite differences.", ""]
    return "\n".join(lines)
