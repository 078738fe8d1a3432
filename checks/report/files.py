"""Write every requested report from one RunReport, each atomically."""

from __future__ import annotations

from verigrad.checks.report.atomic import write_json, write_text
from verigrad.checks.report.model import RunReport


def write_reports(
    run: RunReport,
    *,
    json: str | None = None,
    markdown: str | None = None,
    junit: str | None = None,
    html: str | None = None,
) -> None:
    if json:
        write_json(json, run.to_dict())
    if markdown:
        from verigrad.checks.report.markdown import render_markdown

        write_text(markdown, render_markdown(run))
    if junit:
        from verigrad.checks.report.junit import render_junit

        write_text(junit, render_junit(run))
    if html:
        from verigrad.checks.report.html import render_html

        write_text(html, render_html(run))
