"""What a NumPy-only check costs per point, beside a course-style loop of central differences on the same point.

Run on demand, not in the test suite::

    python benchmarks/numpy_witness.py [--rounds 5] [--size 3]

For each layer of examples/course/check_layers.py, at one point (every symbolic dim ``--size``, the first
configuration of its grid, drawn as the search draws it):

* **verigrad** — the verdict at that point (``checks.search.search.evaluate_point``: the checks before the
  references, the complex step or wide finite differences, the judgement), the witness it used and the
  smallest error it could have seen (``resolution``);
* **course loop** — what a course notebook's ``eval_numerical_gradient_array`` does: for every entry of every
  input, the forward at x ± h (h = 1e-5) and Σ (f₊ − f₋)·dout / 2h, then the relative error
  max|a − d| / max(|a| + |d|) a notebook prints, with no estimate of its own error (truncation h²/6·|f'''|,
  rounding u|f|/h).

Wall clock per point, the median of ``--rounds`` rounds (each method once per round, alternating); the load
average is printed, and the ratio is taken within a round, so that load moves both sides alike.

``--sweep`` measures the witness's sharpness over the searches instead: ``verigrad.check`` of each layer with
``--searches`` seeds (``--examples`` examples each), every point the search judged recorded, and per layer and
gradient the witnesses that judged it, the fraction of points whose smallest visible error (``resolution``,
relative to max|reference|) is above ``--target`` (1e-10, the NumPy-only witness's goal), the largest, and the wall
time of the searches::

    python benchmarks/numpy_witness.py --sweep [--searches 3] [--examples 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "course"))

import check_layers  # noqa: E402  (the course's own module, from its folder)

from verigrad import check  # noqa: E402
from verigrad.analytic import Derivation  # noqa: E402
from verigrad.checks.search import draw_point  # noqa: E402
from verigrad.checks.search import search as search_module  # noqa: E402
from verigrad.checks.search.inputs import bound_for  # noqa: E402
from verigrad.checks.search.search import evaluate_point  # noqa: E402

LAYERS = ("affine", "relu", "batchnorm", "conv", "max_pool", "softmax", "lstm")
#: The step of a course notebook's numerical gradient.
COURSE_H = 1e-5


def point_of(d: Derivation, size: int):
    sizes = {s: size for s in d.symbols}
    for name in d.hyper:
        sizes[name] = d.hyper[name][0]  # the first configuration of each grid
    return draw_point(d, sizes, 1)


def course_loop(bound: Derivation, point) -> dict[str, np.ndarray]:
    """Central differences entry by entry, as eval_numerical_gradient_array does: the forward's value (a layer's
    output, dotted with dout; a loss's scalar) at x ± h (``bound``: the derivation with the point's inputs)."""
    params = {k: np.array(v, dtype=np.float64) for k, v in point.params.items()}
    g_out = point.grad_output

    def f() -> float:
        out = np.asarray(bound.forward(np, **params), dtype=np.float64)
        return float(np.sum(out * g_out)) if g_out is not None else float(out.reshape(()))

    grads = {}
    for name in bound.check:
        x, g = params[name], np.zeros(params[name].shape)
        for k in range(x.size):
            old = x.flat[k]
            x.flat[k] = old + COURSE_H
            fp = f()
            x.flat[k] = old - COURSE_H
            fm = f()
            x.flat[k] = old
            g.flat[k] = (fp - fm) / (2 * COURSE_H)
        grads[name] = g
    return grads


def sweep(searches: int, examples: int, target: float) -> None:
    """Every point of ``searches`` searches per layer, through the search's own ``check_points`` (wrapped to keep
    the reports it yields): per gradient the witnesses, the share of points above ``target`` and the largest."""
    seen: list = []
    plain = search_module.check_points

    def recording(*args, **kwargs):
        for report in plain(*args, **kwargs):
            seen.append(report)
            yield report

    search_module.check_points = recording
    print(f"load average at start: {os.getloadavg()}")
    print(f"| layer (statuses) | gradient | points | witnesses | median | largest | above {target:g} | s per search |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        for name in LAYERS:
            d = getattr(check_layers, name)
            seen.clear()
            t0 = time.perf_counter()
            statuses = [check(d, seed=seed, examples=examples, database=False).status for seed in range(searches)]
            took = (time.perf_counter() - t0) / searches
            for param in d.check:
                gs = [g for r in seen for g in r.gradients if g.param == param and g.resolution is not None]
                res = np.array([g.resolution for g in gs])
                witnesses = "/".join(f"{w} {n}" for w, n in sorted(Counter(str(g.witness) for g in gs).items()))
                share = float(np.mean(res > target)) if res.size else float("nan")
                median = float(np.median(res)) if res.size else float("nan")
                print(
                    f"| {d.name} ({'/'.join(map(str, statuses))}) | {param} | {res.size} | {witnesses} | {median:.1e} |"
                    f" {res.max(initial=0.0):.1e} | {share:.1%} | {took:.1f} |"
                )
    finally:
        search_module.check_points = plain
    print(f"load average at end: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=3)
    ap.add_argument("--sweep", action="store_true", help="the witness's sharpness over the searches, not the cost per point")
    ap.add_argument("--searches", type=int, default=3)
    ap.add_argument("--examples", type=int, default=30)
    ap.add_argument("--target", type=float, default=1e-10)
    args = ap.parse_args()
    if args.sweep:
        sweep(args.searches, args.examples, args.target)
        return
    print(f"load average at start: {os.getloadavg()}")
    print("| layer | entries | witness | sees (relative) | verigrad ms/point | course loop ms/point | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in LAYERS:
        d = getattr(check_layers, name)
        point = point_of(d, args.size)
        bound = bound_for(d, point)
        ours, theirs, ratios = [], [], []
        evaluate_point(d, point)  # warm: imports, the first call's probes
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            report = evaluate_point(d, point)
            t1 = time.perf_counter()
            course_loop(bound, point)
            t2 = time.perf_counter()
            ours.append(t1 - t0)
            theirs.append(t2 - t1)
            ratios.append((t1 - t0) / (t2 - t1))
        entries = sum(int(np.size(point.params[n])) for n in d.check)
        witnesses = "/".join(sorted({str(g.witness) for g in report.gradients}))
        sees = max((g.resolution or 0.0) for g in report.gradients)
        print(
            f"| {d.name} | {entries} | {witnesses} | {sees:.1e} | {1e3 * statistics.median(ours):.1f} |"
            f" {1e3 * statistics.median(theirs):.1f} | {statistics.median(ratios):.1f}× |"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
