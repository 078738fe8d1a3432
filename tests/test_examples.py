"""The runnable examples: run as a user would (a subprocess), with short settings."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Short settings: enough steps for the loss to fall by orders of magnitude, quick under CI.
RELU_ITERATIONS, SIGMOID_STEPS = 60, 40
#: Unit roundoff of float64, in which both sigmoid runs train.
U64 = float(np.finfo(np.float64).eps) / 2
#: Points and hidden units of fit_sigmoid.py: the longest sums in one loss or gradient evaluation.
POINTS, HIDDEN = 100, 20
#: Headroom over the rounding model below (it is a bound on typical, not worst-case, accumulation).
ROUNDING_HEADROOM = 10.0


def run(script: str, *args: str, cwd: Path) -> str:
    # The matrices are small: BLAS threads would only contend with other test workers.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_train_two_layer_relu_loss_falls(tmp_path):
    out = run("train_two_layer_relu.py", "--iterations", str(RELU_ITERATIONS), "--seed", "1", cwd=tmp_path)
    rows = [(int(i), float(v)) for i, v in re.findall(r"^iteration\s+(\d+)\s+loss\s+(\S+)$", out, re.M)]
    assert [i for i, _ in rows] == [0, 50, RELU_ITERATIONS - 1]
    losses = [v for _, v in rows]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 1e-2 * losses[0], losses  # ~3e7 → ~1e4 by iteration 50 with the verified gradients


def test_fit_sigmoid_curves_match_and_the_figure_is_written(tmp_path):
    out = run("fit_sigmoid.py", "--steps", str(SIGMOID_STEPS), cwd=tmp_path)  # figure to the default path in the cwd
    rows = re.findall(r"^step\s+(\d+)\s+analytic loss\s+(\S+)\s+torch loss\s+(\S+)$", out, re.M)
    assert rows and int(rows[-1][0]) == SIGMOID_STEPS - 1
    analytic = [float(a) for _, a, _ in rows]
    assert analytic[-1] < 0.1 * analytic[0], analytic
    gap = float(re.search(r"max \|analytic - torch\| over the loss curves: (\S+)", out).group(1))
    # Both runs do the same float64 arithmetic in different operation orders, so one loss or
    # gradient evaluation differs by at most about (POINTS + HIDDEN)·u relative (the longest sums).
    # The steps descend stably (the loss falls every step), so these differences are not amplified
    # and add up at most linearly: after T steps the curves differ by ≲ T·(POINTS + HIDDEN)·u·loss₀.
    # That is ~5e-13 · loss₀ for 40 steps, while a wrong gradient (a missing 1/N, a flipped sign, float32
    # somewhere) moves the curves apart by O(1e-7 · loss₀) or far more within a step or two.
    tolerance = ROUNDING_HEADROOM * SIGMOID_STEPS * (POINTS + HIDDEN) * U64 * analytic[0]
    assert gap <= tolerance, (gap, tolerance)
    png = tmp_path / "fit_sigmoid.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000  # two panels with curves, not an empty canvas
