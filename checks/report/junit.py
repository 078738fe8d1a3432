"""The JUnit XML report: one testsuite, one testcase per derivation × gradient.

Built with ElementTree so that it is always well-formed; characters XML 1.0 cannot hold (most
control characters, lone surrogates) are shown as escapes first, since ElementTree would write
them as they are and no parser would read the file back.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from verigrad.checks.report.model import ERROR, FAIL, GradientReport, Report, RunReport
from verigrad.checks.report.terminal import disagreement, headline, nondiff_text, point_text, visible, warnings_of, window_lines, worst_text

SUITE = "verigrad"
#: Name of the testcase standing for a derivation that could not be checked at all.
WHOLE = "(derivation)"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: object) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", visible(text))


def _named(g: GradientReport) -> str:
    """The headline, naming the gradient unless it already starts by doing so."""
    sentence = headline(g)
    return sentence if sentence.startswith(f"∂f/∂{g.param} ") else f"∂f/∂{g.param}: {sentence}"


def _body(r: Report, g: GradientReport | None, run_seed: int | None) -> str:
    lines = []
    if g is not None:
        lines.append(_named(g))
        if g.diagnosis is not None and g.message and g.message != g.diagnosis.sentence:
            lines.append(g.message)
        worst = worst_text(g)
        if worst:
            lines.append(worst)
        facts = [disagreement(g)] if g.mismatches and headline(g) != disagreement(g) else []
        if g.blame:
            facts.append(f"blame: {g.blame}")
        if g.nondifferentiable:
            facts.append(nondiff_text(g))
        if facts:
            lines.append("; ".join(facts))
        lines += window_lines(g)
    elif r.message:
        lines.append(r.message)
    where = point_text(r, run_seed)
    if where:
        lines.append(where)
    if r.replay:
        lines.append(f"replay: {r.replay}")
    return "\n".join(lines)


def _case(suite: ET.Element, classname: str, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=_xml(classname), name=_xml(name), time=f"{seconds:.3f}")


def render_junit(run: RunReport) -> str:
    root = ET.Element("testsuites", name=SUITE)
    suite = ET.SubElement(root, "testsuite", name=SUITE)
    props = ET.SubElement(suite, "properties")
    if run.seed is not None:
        ET.SubElement(props, "property", name="seed", value=str(run.seed))
    if run.interrupted:
        ET.SubElement(props, "property", name="interrupted", value="true")
    tests = failures = errors = 0
    total = 0.0
    for r in run.reports:
        total += r.duration_s
        warnings = "\n".join(w if p is None else f"∂f/∂{p}: {w}" for p, w in warnings_of(r))
        if r.status == ERROR and not r.failures:  # the derivation itself could not be checked
            case = _case(suite, r.name, WHOLE, r.duration_s if not r.gradients else 0.0)
            tests += 1
            errors += 1
            ET.SubElement(case, "error", message=_xml(r.message or "could not be checked"), type=r.status).text = _xml(_body(r, None, run.seed))
        if not r.gradients:
            continue
        share = r.duration_s / len(r.gradients)
        for g in r.gradients:
            case = _case(suite, r.name, g.param, share)
            tests += 1
            if g.status == FAIL:
                failures += 1
                kind = g.diagnosis.kind if g.diagnosis is not None else (g.blame or "mismatch")
                tag, message = "failure", _named(g)
            elif g.status == ERROR:
                errors += 1
                kind, tag, message = "error", "error", _named(g)
            else:
                if g.warnings:
                    ET.SubElement(case, "system-out").text = _xml("\n".join(g.warnings))
                continue
            element = ET.SubElement(case, tag, message=_xml(message), type=_xml(kind))
            element.text = _xml(_body(r, g, run.seed))
            if warnings:
                ET.SubElement(case, "system-out").text = _xml(warnings)
    suite.set("timestamp", datetime.now(UTC).isoformat(timespec="seconds"))
    for element in (root, suite):
        element.set("tests", str(tests))
        element.set("failures", str(failures))
        element.set("errors", str(errors))
        element.set("skipped", "0")
        element.set("time", f"{total:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
