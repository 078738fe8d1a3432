"""The terminal report: one line per gradient, then what went wrong and how to replay it."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from ._model import ERROR, FAIL, PASS, Report, RunReport

_COLORS = {PASS: "\033[32m", FAIL: "\033[31m", ERROR: "\033[33m"}
_RESET = "\033[0m"


def use_color(stream: TextIO, flag: bool | None = None) -> bool:
    if flag is not None:
        return flag
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2e}"


def _status(s: str, color: bool) -> str:
    text = f"{s.upper():5}"
    return f"{_COLORS.get(s, '')}{text}{_RESET}" if color else text


def render(run: RunReport, color: bool = False) -> str:
    rows = [("derivation", "param", "status", "max abs err", "max rel err", "note")]
    for r in run.reports:
        if r.status == ERROR and not r.gradients:
            rows.append((r.name, "—", ERROR, "—", "—", r.message or ""))
        for g in r.gradients:
            note = g.diagnosis.kind if g.diagnosis else (g.blame or "")
            if g.nondifferentiable:
                note = (note + " " if note else "") + f"{len(g.nondifferentiable)} nondiff"
            rows.append((r.name, g.param, g.status, _fmt(g.max_abs_err), _fmt(g.max_rel_err), note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        if k:
            cells[2] = _status(row[2], color) + " " * (widths[2] - 5)
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    for r in run.reports:
        lines.extend(_details(r))
    n = len(run.reports)
    passed = sum(r.passed for r in run.reports)
    failed = sum(r.status == FAIL for r in run.reports)
    errors = n - passed - failed
    lines.append(f"{passed} passed, {failed} failed" + (f", {errors} errors" if errors else "") + (" (interrupted)" if run.interrupted else ""))
    return "\n".join(lines)


def _details(r: Report) -> list[str]:
    out: list[str] = []
    if r.status == ERROR:
        out.append(f"{r.name}: error: {r.message}")
    for g in r.failures:
        head = f"{r.name} ∂f/∂{g.param}: "
        if g.diagnosis:
            head += g.diagnosis.sentence
        elif g.message:
            head += g.message
        else:
            head += f"{g.mismatches} of {g.entries} entries disagree"
        out.append(head)
        if g.worst_index is not None and g.analytic_value is not None:
            out.append(
                f"  worst entry {list(g.worst_index)}: analytic {g.analytic_value:.6g}, reference {g.reference_value:.6g}"
                f" (abs err {_fmt(g.max_abs_err)}, rel err {_fmt(g.max_rel_err)}, threshold {g.threshold.get('analytic_vs_autograd', 0):.2e})"
            )
    if r.status != PASS and r.shapes:
        out.append(f"  at {', '.join(f'{k}={v}' for k, v in r.shapes.items())}" + (f", seed {r.point_seed}" if r.point_seed is not None else ""))
    if r.status != PASS and r.replay:
        out.append(f"  replay: {r.replay}")
    for w in r.warnings + [w for g in r.gradients for w in g.warnings]:
        out.append(f"  warning ({r.name}): {w}")
    return out


def print_run(run: RunReport, stream: TextIO = sys.stdout, color: bool | None = None) -> None:
    print(render(run, use_color(stream, color)), file=stream)
