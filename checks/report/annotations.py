"""CI annotations: one line per failing gradient (and per derivation that could not be checked) in the form a CI
service turns into a note on the pull request's diff.

``github``: GitHub Actions workflow commands, ``::error file=F,line=L,title=T::message``, printed on stdout. A failing
gradient's line is its slip's (checks/diagnose/slip.py: the first wrong line of the derivation), else where the
derivation's hand-derived gradients are written (the function, or a Function's ``backward``); without a location
(a derivation that failed to load) the annotation names the target file alone.
"""

from __future__ import annotations

import os

from verigrad.checks.report.model import GradientReport, Report, RunReport, Status
from verigrad.checks.report.words import gradient_replay, headline, visible

#: Annotation formats ``--annotations`` accepts.
FORMATS = ("github",)


def _data(text: str) -> str:
    """A workflow command's message: every character that could end the command's line or steer a terminal shown
    as a printed line shows it (``visible``: control characters, NEL, U+2028/2029, bidirectional controls), a
    newline kept; then %, CR and LF escaped by GitHub's rules, so a newline is a line break inside the annotation."""
    return visible(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """A workflow command's property value: also ':' and ',' escaped."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _where(r: Report, here: str) -> str:
    if r.location is not None:
        file = os.path.relpath(str(r.location["file"]), here)
        return f"file={_property(file)},line={int(r.location['line'])}"
    if r.target and r.target.endswith(".py"):
        return f"file={_property(os.path.relpath(r.target, here))}"
    return ""


def _at_slip(g: GradientReport, here: str) -> str | None:
    """file=F,line=L of the gradient's slip, or None when none is named."""
    if g.slip is None:
        return None
    return f"file={_property(os.path.relpath(g.slip.file, here))},line={int(g.slip.line)}"


def _command(where: str, title: str, message: str) -> str:
    props = ",".join(p for p in (where, f"title={_property(title)}") if p)
    return f"::error {props}::{_data(message)}"


def github_annotations(run: RunReport, here: str | None = None) -> list[str]:
    """One workflow command per failing gradient, and one per derivation in error; paths relative to ``here``."""
    here = os.getcwd() if here is None else here
    lines = []
    for r in run.reports:
        if r.status == Status.PASS:
            continue
        where = _where(r, here)
        failing = [g for g in r.gradients if g.status == Status.FAIL]
        if r.status == Status.ERROR and not failing:
            lines.append(_command(where, f"verigrad: {r.name} could not be checked", r.message or "error"))
        for g in failing:
            replay = gradient_replay(g) or r.replay
            slip = f"\nslip: {g.slip.sentence}" if g.slip is not None else ""
            message = headline(g) + slip + (f"\nreplay: {replay}" if replay else "")
            lines.append(_command(_at_slip(g, here) or where, f"verigrad: {r.name} ∂f/∂{g.param} is wrong", message))
    return lines
