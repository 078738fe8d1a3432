"""The JUnit XML report: one testsuite, one testcase per derivation × gradient.

A testcase's classname is the derivation's name and its name the gradient's parameter; for a pytest item (the
plugin's report) the classname is its module's dotted path and the variable bound to it (``tests.test_power.power_2``)
and the name the derivation's with the parameter (``power_2[w]``; the name alone for the derivation as a whole),
so two derivations of one name are told apart.

Built with ElementTree so that it is always well-formed; characters XML 1.0 cannot hold (most
control characters, lone surrogates) are shown as escapes first, since ElementTree would write
them as they are and no parser would read the file back.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime

from verigrad.checks.report.model import GradientReport, Report, RunReport, Status
from verigrad.checks.report.words import (
    facts,
    gradient_point_text,
    gradient_replay,
    headline,
    names_its_gradient,
    numpy_only_line,
    point_text,
    side_message,
    slip_text,
    trace_lines,
    visible,
    warnings_of,
    window_lines,
    worst_text,
)

SUITE = "verigrad"
#: Name of the testcase standing for a derivation that could not be checked at all.
WHOLE = "(derivation)"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: object) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", visible(text))


def _named(g: GradientReport) -> str:
    """The headline, naming the gradient unless it already starts by doing so."""
    sentence = headline(g)
    return sentence if names_its_gradient(g) else f"{g.title}: {sentence}"


def _body(r: Report, g: GradientReport | None, run_seed: int | None) -> str:
    lines = []
    if g is not None:
        lines.append(_named(g))
        extra = side_message(g)
        if extra:
            lines.append(extra)
        worst = worst_text(g)
        if worst:
            lines.append(worst)
        said = facts(g)
        if said:
            lines.append("; ".join(said))
        lines += window_lines(g)
        slip = slip_text(g)
        if slip:
            lines.append(slip)
        lines += trace_lines(g)
    elif r.message:
        lines.append(r.message)
    # A gradient found failing at a point of its own is shown there; any other at the derivation's point.
    own = g is not None and g.counterexample is not None
    where = gradient_point_text(r, g, run_seed) if own else point_text(r, run_seed)
    replay = gradient_replay(g) if own else r.replay
    if where:
        lines.append(where)
    if replay:
        lines.append(f"replay: {replay}")
    return "\n".join(lines)


def _case(suite: ET.Element, r: Report, param: str | None, seconds: float) -> ET.Element:
    """The testcase of ``r``'s gradient of ``param`` (None: of the derivation as a whole)."""
    path, sep, last = (r.node_id or "").partition("::")
    if sep:  # a pytest item
        classname = f"{path.removesuffix('.py').replace('/', '.')}.{r.binding or last}"
        name = r.name if param is None else f"{r.name}[{param}]"
    else:  # a derivation of ``verigrad check``, or a module that failed to collect
        classname, name = r.name, WHOLE if param is None else param
    return ET.SubElement(suite, "testcase", classname=_xml(classname), name=_xml(name), time=f"{seconds:.3f}")


@dataclass
class _Tally:
    """The counts a testsuite element states."""

    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    time: float = 0.0


def _gradient_case(suite: ET.Element, r: Report, g: GradientReport, share: float, run_seed: int | None, tally: _Tally) -> None:
    """One gradient's testcase: a failure (typed by its diagnosis) or an error, with the body the other views show."""
    case = _case(suite, r, g.param, share)
    tally.tests += 1
    if g.status == Status.FAIL:
        tally.failures += 1
        kind = g.diagnosis.kind if g.diagnosis is not None else (g.blame or "mismatch")
        tag = "failure"
    elif g.status == Status.ERROR:
        tally.errors += 1
        kind, tag = Status.ERROR, "error"
    else:
        notes = [*r.warnings, *g.warnings]  # the derivation's warnings concern each of its gradients
        if notes:
            ET.SubElement(case, "system-out").text = _xml("\n".join(notes))
        return
    element = ET.SubElement(case, tag, message=_xml(_named(g)), type=_xml(kind))
    element.text = _xml(_body(r, g, run_seed))
    warnings = "\n".join(w if p is None else f"∂f/∂{p}: {w}" for p, w in warnings_of(r))
    if warnings:
        ET.SubElement(case, "system-out").text = _xml(warnings)


def _derivation_cases(suite: ET.Element, r: Report, run_seed: int | None, tally: _Tally) -> None:
    """A derivation's testcases: one per gradient, and one for the derivation when it could not be checked at all."""
    tally.time += r.duration_s
    if r.status == Status.SKIP:
        tally.tests += 1
        tally.skipped += 1
        ET.SubElement(_case(suite, r, None, 0.0), "skipped", message=_xml(r.message or "skipped"))
        return
    if r.status == Status.ERROR and not r.failures:
        case = _case(suite, r, None, r.duration_s if not r.gradients else 0.0)
        tally.tests += 1
        tally.errors += 1
        ET.SubElement(case, "error", message=_xml(r.message or "could not be checked"), type=r.status).text = _xml(_body(r, None, run_seed))
    for g in r.gradients:
        _gradient_case(suite, r, g, r.duration_s / len(r.gradients), run_seed, tally)


def render_junit(run: RunReport) -> str:
    """The run as one JUnit testsuite, ready to write (XML declaration included)."""
    root = ET.Element("testsuites", name=SUITE)
    suite = ET.SubElement(root, "testsuite", name=SUITE)
    props = ET.SubElement(suite, "properties")
    if run.seed is not None:
        ET.SubElement(props, "property", name="seed", value=str(run.seed))
    if run.interrupted:
        ET.SubElement(props, "property", name="interrupted", value="true")
    if (numpy := numpy_only_line(run)) is not None:
        ET.SubElement(props, "property", name="numpy_only", value=_xml(numpy))
    tally = _Tally()
    for r in run.reports:
        _derivation_cases(suite, r, run.seed, tally)
    suite.set("timestamp", datetime.now(UTC).isoformat(timespec="seconds"))
    for element in (root, suite):
        element.set("tests", str(tally.tests))
        element.set("failures", str(tally.failures))
        element.set("errors", str(tally.errors))
        element.set("skipped", str(tally.skipped))
        element.set("time", f"{tally.time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
