"""The HTML report opened in a real headless browser: it renders, and the heatmaps are there to see."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

from verigrad.analytic import Derivation
from verigrad.checks import RunReport, check
from verigrad.checks.report import Status
from verigrad.checks.report.html import render_html

__verigrad__ = False  # the derivation below is wrong on purpose: not collected as a test

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Seconds a headless screenshot may take (a cold start of the browser included).
BROWSER_TIMEOUT = 60
WINDOW = (1200, 2000)


def _browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def _forward(xp, W, X):
    return xp.sum(xp.tanh(X @ W) ** 2)


def _sign_flipped(W, X):
    t = np.tanh(X @ W)
    d = 2 * t * (1 - t**2)
    return {"W": -(X.T @ d), "X": d @ W.T}


@pytest.mark.skipif(_browser() is None, reason=f"no headless browser found (looked for {', '.join(BROWSERS)}); CI installs chromium")
def test_failing_report_renders_in_a_headless_browser(tmp_path):
    wrong = Derivation(name="tanh <sign> & flip", shapes={"W": ("D", "M"), "X": ("N", "D")}, forward=_forward, gradients=_sign_flipped)
    report = check(wrong, replay=({"D": 6, "M": 4, "N": 3}, 2), target="wrong.py")
    assert report.status == Status.FAIL
    page = tmp_path / "report.html"
    page.write_text(render_html(RunReport([report], seed=2)), encoding="utf-8")
    shot = tmp_path / "shot.png"
    command = [
        _browser(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False)
    assert shot.exists(), f"no screenshot; browser exit {done.returncode}: {done.stderr[-2000:]}"
    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    assert float(pixels.var()) > 1e-3, "the screenshot is blank"
    top = pixels[: WINDOW[1] // 2]
    red = (top[..., 0] > 0.5) & (top[..., 2] < 0.35)
    blue = (top[..., 2] > 0.5) & (top[..., 0] < 0.35)
    # The heatmaps' colours are on screen, not only the text: both signs, over many pixels.
    assert red.sum() > 500 and blue.sum() > 500, (int(red.sum()), int(blue.sum()))
