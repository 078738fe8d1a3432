"""The HTML report: one self-contained file with heatmaps of analytic, reference and their difference.

Self-contained means inline CSS and images as ``data:`` URIs; a Content-Security-Policy forbids
the page from loading anything else. Heatmaps are drawn pixel by pixel with matplotlib's colour
maps and written as PNG by ``matplotlib.image.imsave`` (no figure, so no GUI backend is touched).

Reading a heatmap: analytic and reference share one symmetric colour scale (blue negative, white
zero, red positive), so a sign flip shows as swapped colours, a transposed block as a mirrored
pattern and a wrongly masked region as a white patch on one side only. The difference has its
own symmetric scale. A box marks the worst entry; a grey × marks an entry that is not
differentiable at the point (not judged); solid grey is a non-finite value.
"""

from __future__ import annotations

import base64
import io
import math
from html import escape as _html_escape

import numpy as np

from verigrad.checks.report.model import GradientReport, Report, RunReport, Status
from verigrad.checks.report.words import (
    disagreement,
    figures_point_text,
    figures_replay,
    fmt,
    gradient_point_text,
    gradient_replay,
    headline,
    headline_is_disagreement,
    nondiff_text,
    note,
    numpy_only_line,
    own_points,
    point_text,
    side_message,
    slip_text,
    summary_line,
    threshold,
    trace_rows,
    visible,
    warnings_of,
    window_lines,
    worst_text,
)

#: Entries per side above which a heatmap is pooled (each pixel then shows the largest entry of its block).
MAX_ENTRIES = 200
#: Longest side of a heatmap image, in pixels, and the largest a single entry is drawn.
MAX_PIXELS = 288
MAX_CELL = 56
#: The difference is drawn on a scale of at least this fraction of the values' scale, so rounding
#: noise on a passing gradient stays white instead of being stretched to full colour.
DIFF_FLOOR = 1e-8
COLORMAP = "RdBu_r"
_NONFINITE = (128, 128, 128, 255)
_MARK = (60, 60, 60, 255)
_BOX = (0, 0, 0, 255)
_GRID = (225, 225, 225, 255)
#: CSS class of each status (the stylesheet above names them).
_STATUS_CLASS = {Status.PASS: "pass", Status.FAIL: "fail", Status.ERROR: "error", Status.SKIP: "skip"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 6px} h3{font-size:15px;margin:18px 0 4px}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:4px;padding:8px 10px;overflow:auto;white-space:pre-wrap}
table{border-collapse:collapse;margin:8px 0} th,td{padding:3px 10px;border-bottom:1px solid #e1e4e8;text-align:left}
td.num{text-align:right;font-family:ui-monospace,Menlo,Consolas,monospace}
.badge{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;font-weight:600;color:#fff}
.pass .badge,.badge.pass{background:#1a7f37} .fail .badge,.badge.fail{background:#cf222e} .error .badge,.badge.error{background:#9a6700}
.skip .badge,.badge.skip{background:#6e7781}
.sentence{font-size:15px;font-weight:600;margin:6px 0;white-space:pre-wrap}
.maps{display:flex;flex-wrap:wrap;gap:22px;align-items:flex-start;margin:8px 0 4px}
figure{margin:0;min-width:170px} figcaption{font-size:12.5px;margin-top:4px;max-width:300px}
img.map{image-rendering:pixelated;border:1px solid #d0d7de;display:block}
.bar{height:9px;width:170px;border:1px solid #d0d7de;margin-top:6px}
.ticks{display:flex;justify-content:space-between;width:172px;font-size:11px;color:#57606a}
.note{color:#57606a;font-size:12.5px} .legend{color:#57606a;font-size:12.5px;max-width:900px}
details>summary{cursor:pointer;font-weight:600;margin:10px 0}
section.derivation{border-top:2px solid #e1e4e8;margin-top:22px}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def esc(text: object) -> str:
    """User text as inert HTML: escaped, with control characters made visible."""
    return _html_escape(visible(text), quote=True)


# --- heatmaps -------------------------------------------------------------------------------------


def _as_grid(a: np.ndarray) -> tuple[np.ndarray, str]:
    """A 2-D view of any array (1-D: one row; n-D: rows are all leading indices) and a note on how."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1), ""
    if a.ndim == 1:
        return a.reshape(1, -1), "1-D, drawn as one row"
    if a.ndim == 2:
        return a, ""
    return a.reshape(-1, a.shape[-1]), f"{a.ndim}-D, drawn as {math.prod(a.shape[:-1])} rows of {a.shape[-1]}"


def _grid_index(shape: tuple[int, ...], index: tuple[int, ...] | None) -> tuple[int, int] | None:
    if index is None or len(index) != len(shape):
        return None
    if not shape:
        return (0, 0)
    flat = int(np.ravel_multi_index(index, shape))
    return divmod(flat, shape[-1])


def _pool(values: np.ndarray, mask: np.ndarray, factor: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of ``factor`` entries → the entry of largest magnitude (its sign kept), mask if any is masked."""
    fr, fc = factor
    rows, cols = values.shape
    pr, pc = -rows % fr, -cols % fc
    v = np.pad(values, ((0, pr), (0, pc)), constant_values=0.0)
    m = np.pad(mask, ((0, pr), (0, pc)), constant_values=False)
    R, C = v.shape[0] // fr, v.shape[1] // fc
    blocks = v.reshape(R, fr, C, fc).transpose(0, 2, 1, 3).reshape(R, C, fr * fc)
    mag = np.where(np.isfinite(blocks), np.abs(blocks), np.inf)  # a non-finite entry wins its block
    pick = np.argmax(mag, axis=2)
    pooled = np.take_along_axis(blocks, pick[..., None], axis=2)[..., 0]
    masked = m.reshape(R, fr, C, fc).any(axis=(1, 3))
    return pooled, masked


def heatmap(values: np.ndarray, scale: float, mask: np.ndarray | None = None, worst: tuple[int, int] | None = None) -> tuple[str, int, int]:
    """A PNG data URI of a 2-D array on the symmetric scale ±``scale``, with its pixel width and height."""
    from matplotlib import colormaps
    from matplotlib.image import imsave

    v = np.asarray(values, dtype=np.float64)
    m = np.zeros(v.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    factor = (max(1, math.ceil(v.shape[0] / MAX_ENTRIES)), max(1, math.ceil(v.shape[1] / MAX_ENTRIES)))
    if factor != (1, 1):
        v, m = _pool(v, m, factor)
        if worst is not None:
            worst = (worst[0] // factor[0], worst[1] // factor[1])
    rows, cols = v.shape
    cell = max(1, min(MAX_CELL, MAX_PIXELS // max(rows, cols)))
    finite = np.isfinite(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.clip(0.5 + 0.5 * np.where(finite, v, 0.0) / (scale if scale > 0 else 1.0), 0.0, 1.0)
    rgba = colormaps[COLORMAP](level, bytes=True)
    rgba[~finite] = _NONFINITE
    img = np.repeat(np.repeat(rgba, cell, axis=0), cell, axis=1)
    if cell >= 8:  # thin separators so single entries can be counted
        img[::cell, :] = _GRID
        img[:, ::cell] = _GRID
    for p, q in np.argwhere(m):
        _cross(img, p * cell, q * cell, cell)
    if worst is not None:
        _box(img, worst[0] * cell, worst[1] * cell, cell)
    buf = io.BytesIO()
    imsave(buf, img, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), img.shape[1], img.shape[0]


def _cross(img: np.ndarray, top: int, left: int, cell: int) -> None:
    if cell < 5:  # too small for a cross: the whole cell goes grey
        img[top : top + cell, left : left + cell] = _MARK
        return
    k = np.arange(1, cell - 1)
    img[top + k, left + k] = _MARK
    img[top + k, left + cell - 1 - k] = _MARK


def _box(img: np.ndarray, top: int, left: int, cell: int) -> None:
    """An outline around one entry, at least 9 px across so that it shows on a pooled or tiny heatmap."""
    side = max(cell, 9)
    y0, x0 = top + cell // 2 - side // 2, left + cell // 2 - side // 2
    y1, x1 = min(img.shape[0], y0 + side) - 1, min(img.shape[1], x0 + side) - 1
    y0, x0 = max(0, y0), max(0, x0)
    rings = [_BOX, _BOX, (255, 255, 255, 255)] if side >= 14 else [_BOX]  # black outside, white inside: seen on any colour
    for w, colour in enumerate(rings):
        img[y0 + w, x0 + w : x1 + 1 - w] = colour
        img[y1 - w, x0 + w : x1 + 1 - w] = colour
        img[y0 + w : y1 + 1 - w, x0 + w] = colour
        img[y0 + w : y1 + 1 - w, x1 - w] = colour


def _colorbar(scale: float) -> str:
    from matplotlib import colormaps

    cmap = colormaps[COLORMAP]
    stops = ",".join("#{:02x}{:02x}{:02x}".format(*cmap(k / 8, bytes=True)[:3]) for k in range(9))
    return (
        f'<div class="bar" style="background:linear-gradient(to right,{stops})"></div>'
        f'<div class="ticks"><span>{-scale:.2g}</span><span>0</span><span>{scale:.2g}</span></div>'
    )


def _figure(title: str, grid: np.ndarray, scale: float, mask, worst, caption: str) -> str:
    uri, w, h = heatmap(grid, scale, mask, worst)
    return (
        f'<figure><img class="map" src="{uri}" width="{w}" height="{h}" alt="{esc(title)}">'
        f"<figcaption><b>{esc(title)}</b> {esc(caption)}</figcaption>{_colorbar(scale)}</figure>"
    )


def _max_abs(*arrays: np.ndarray | None) -> float:
    best = 0.0
    for arr in arrays:
        if arr is not None:
            a = np.asarray(arr, dtype=np.float64)
            fin = a[np.isfinite(a)]
            if fin.size:
                best = max(best, float(np.max(np.abs(fin))))
    return best


def _shape_text(a: np.ndarray) -> str:
    return "(" + ", ".join(map(str, np.shape(a))) + ")"


def heatmaps(g: GradientReport) -> tuple[list[str], list[str]]:
    """(figures, notes) for one gradient: analytic, reference and their difference where they can be drawn."""
    ref = None if g.reference is None else np.asarray(g.reference, dtype=np.float64)
    ana = None
    notes: list[str] = []
    if g.analytic is not None:
        raw = np.asarray(g.analytic)
        if np.iscomplexobj(raw):
            notes.append(f"the analytic gradient (dtype {raw.dtype}) is not real and cannot be drawn")
        else:
            try:
                ana = np.asarray(raw, dtype=np.float64)
            except (TypeError, ValueError):
                notes.append(f"the analytic gradient (dtype {raw.dtype}) cannot be drawn")
    if ref is None and ana is None:
        return [], notes
    scale = _max_abs(ana, ref)
    same = ana is not None and ref is not None and ana.shape == ref.shape
    mask = None
    if ref is not None and g.nondiff_mask is not None and np.shape(g.nondiff_mask) == ref.shape:
        mask = _as_grid(np.asarray(g.nondiff_mask, dtype=np.float64))[0] > 0
    worst = _grid_index(ref.shape, g.worst_index) if ref is not None else None
    figures = []
    if ana is not None:
        grid, how = _as_grid(ana)
        caption = _shape_text(ana) + (f", {how}" if how else "")
        if not same and ref is not None:
            caption += f"; not the parameter's shape {_shape_text(ref)}, drawn on its own shape"
            notes.append(f"the analytic gradient has shape {_shape_text(ana)} but the parameter has shape {_shape_text(ref)}: no difference drawn")
        figures.append(_figure("analytic", grid, scale, mask if same else None, worst if same else None, caption))
    elif g.analytic is None:
        notes.append("no analytic gradient to draw")
    if ref is not None:
        grid, how = _as_grid(ref)
        figures.append(_figure("reference", grid, scale, mask, worst, _shape_text(ref) + (f", {how}" if how else "")))
    if same:
        with np.errstate(invalid="ignore"):
            diff = ana - ref
        live = diff if mask is None else np.where(np.asarray(g.nondiff_mask, dtype=bool), 0.0, diff)
        dscale = max(_max_abs(live), DIFF_FLOOR * scale)
        grid, _ = _as_grid(diff)
        figures.append(_figure("analytic − reference", grid, dscale, mask, worst, f"own scale ±{dscale:.2g}"))
    return figures, notes


# --- the page -------------------------------------------------------------------------------------


def _badge(status: Status) -> str:
    return f'<span class="badge {_STATUS_CLASS.get(status, "")}">{esc(status.upper())}</span>'


def _summary_table(run: RunReport) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("derivation", "param", "status", "max abs err", "max rel err", "abs threshold", "note", "figures at"))
    rows = []
    for k, r in enumerate(run.reports):
        link = f'<a href="#d{k}">{esc(r.name)}</a>'
        if not r.gradients:
            empty = "<td></td>" * 3
            rows.append(f"<tr><td>{link}</td><td>—</td><td>{_badge(r.status)}</td>{empty}<td>{esc(r.message or '')}</td><td></td></tr>")
        for j, g in enumerate(r.gradients):
            rows.append(
                f'<tr><td>{link}</td><td><a href="#d{k}g{j}">{esc(g.param)}</a></td><td>{_badge(g.status)}</td>'
                f'<td class="num">{fmt(g.max_abs_err)}</td><td class="num">{fmt(g.max_rel_err)}</td>'
                f'<td class="num">{fmt(threshold(g))}</td><td>{esc(note(g))}</td><td>{esc(figures_point_text(r, g))}</td></tr>'
            )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _own_point(r: Report, g: GradientReport, run_seed: int | None) -> list[str]:
    """Where ``g`` was found failing, and its replay, when that is a point of its own."""
    where, replay = gradient_point_text(r, g, run_seed), gradient_replay(g)
    out = [f'<p class="note">{esc(where)}</p>'] if where else []
    return out + ([f"<p>replay:</p><pre>{esc(replay)}</pre>"] if replay else [])


def _passing_point(r: Report, g: GradientReport) -> list[str]:
    """Where a passing gradient's figures and heatmaps were taken (its most demanding point), and its replay."""
    out = [f'<p class="note">figures at {esc(figures_point_text(r, g))}</p>']
    replay = figures_replay(r, g)
    return out + ([f"<p>replay:</p><pre>{esc(replay)}</pre>"] if replay else [])


def _gradient(k: int, j: int, r: Report, g: GradientReport, run_seed: int | None = None) -> str:
    parts = [f'<h3 id="d{k}g{j}">{esc(g.title)} {_badge(g.status)} <span class="note">{esc(note(g))}</span></h3>']
    if g.status != Status.PASS and own_points(r):
        parts += _own_point(r, g, run_seed)
    if g.status == Status.PASS:
        parts += _passing_point(r, g)
    if g.status != Status.PASS:
        parts.append(f'<p class="sentence">{esc(headline(g))}</p>')
        extra = side_message(g)
        if extra:
            parts.append(f"<p>{esc(extra)}</p>")
    facts = []
    worst = worst_text(g)
    if worst and g.status != Status.PASS:
        facts.append(worst)
    if g.mismatches and not headline_is_disagreement(g):
        facts.append(disagreement(g))
    if g.nondifferentiable:
        facts.append(nondiff_text(g) + " (marked ×)")
    if facts:
        parts.append("<p>" + "<br>".join(esc(f) for f in facts) + "</p>")
    if g.status != Status.PASS:
        window = window_lines(g)
        if window:
            parts.append("<pre>" + esc("\n".join(window)) + "</pre>")
        parts += _trace(g)
    figures, notes = heatmaps(g)
    parts += [f'<p class="note">{esc(n)}</p>' for n in notes]
    if figures:
        parts.append('<div class="maps">' + "".join(figures) + "</div>")
    parts += [f'<p class="note">warning: {esc(w)}</p>' for w in g.warnings]
    return "\n".join(parts)


def _trace(g: GradientReport) -> list[str]:
    """The slip's sentence and the derivation trace, a row per step (✓ right, ✗ wrong, · unchecked)."""
    out = []
    slip = slip_text(g)
    if slip:
        out.append(f'<p class="sentence">{esc(slip)}</p>')
    rows = trace_rows(g)
    if rows:
        cells = "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>"
        body = "".join(cells.format(*(esc(c) for c in row)) for row in rows)
        out.append(f'<table class="trace"><tr><th></th><th>line</th><th>step</th><th>matched</th></tr>{body}</table>')
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _derivation(k: int, r: Report, run_seed: int | None) -> str:
    head = f'<h2 id="d{k}">{esc(r.name)} {_badge(r.status)}</h2>'
    parts = []
    if r.status == Status.ERROR and not r.failures:
        parts.append(f'<p class="sentence">could not be checked</p><pre>{esc(r.message or "(no message)")}</pre>')
    if r.status == Status.SKIP:
        parts.append(f'<p class="sentence">not checked: {esc(r.message or "skipped")}</p>')
    where = point_text(r, run_seed)
    if where and own_points(r):  # each failing gradient gives its own point below
        where = "first failure " + where
    if where:
        parts.append(f'<p class="note">{esc(where)}; {_count(r.examples, "example")} ({_count(r.points, "point")}) checked</p>')
    parts += [f'<p class="note">warning: {esc(w)}</p>' for w in r.warnings]
    grads = [_gradient(k, j, r, g, run_seed) for j, g in enumerate(r.gradients)]
    failing = [s for s, g in zip(grads, r.gradients, strict=True) if g.status != Status.PASS]
    passing = [s for s, g in zip(grads, r.gradients, strict=True) if g.status == Status.PASS]
    parts += failing
    if r.status != Status.PASS and r.replay and not own_points(r):
        parts.append(f"<p>replay:</p><pre>{esc(r.replay)}</pre>")
    if passing:
        label = "all gradients" if not failing else f"{len(passing)} passing gradient{'s' if len(passing) > 1 else ''}"
        parts.append(f"<details><summary>{label}</summary>" + "\n".join(passing) + "</details>")
    return f'<section class="derivation {_STATUS_CLASS.get(r.status, "")}">{head}\n' + "\n".join(parts) + "</section>"


def render_html(run: RunReport) -> str:
    title = f"verigrad: {summary_line(run)}"
    about = []
    if run.seed is not None:
        about.append(f"seed {run.seed}")
    if run.interrupted:
        about.append("interrupted: only the derivations below were checked")
    if (numpy := numpy_only_line(run)) is not None:
        about.append(numpy)
    warns = sum(len(warnings_of(r)) for r in run.reports)
    if warns:
        about.append(f"{warns} warning{'s' if warns > 1 else ''}")
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="note">{esc("; ".join(about))}</p>' if about else "",
        _summary_table(run),
        '<p class="legend">Heatmaps: analytic and reference share one symmetric scale (blue negative, white zero, red positive), '
        "so a sign flip shows as swapped colours and a transposed block as a mirrored pattern; the difference has its own scale. "
        "Black box: the worst entry. Grey ×: not differentiable at the point (not judged). Solid grey: not finite. "
        f"Arrays larger than {MAX_ENTRIES}×{MAX_ENTRIES} are pooled, each pixel showing the largest entry of its block.</p>",
    ]
    body += [_derivation(k, r, run.seed) for k, r in enumerate(run.reports)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n<body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n"
    )
