"""The seed's sizes through the public API: a planted error found by projection, exhaustive against 2P forwards.

Run alone (about 5 minutes on 2 cores) or as ``python benchmarks/speed.py --seed-size``::

    python benchmarks/exhaustive_seed_size.py [--sizes N=64,D_in=1000,H=100,D_out=10]

The network is the seed's two-layer ReLU net f = ‖max(X W1, 0) W2 − Y‖²_F (``verigrad.builtin("two_layer_relu")``)
at the point ``verigrad.draw_point(d, sizes, 0)``.

* **planted** — a derivation whose ∂f/∂W1 is moved by 1e-6 · max|∂f/∂W1| at W1[0, 0] (computed from each call's
  own gradient); ``verigrad.check(planted, at=point, mode="projection")`` must fail ∂f/∂W1 with its worst entry
  at (0, 0) within 200 forward evaluations (the report's ``evaluations``). The correct derivation is checked the
  same way (no false alarm), median time of 3 runs; the planted one once, its time including the diagnosis a
  failure gets (4 more points at the same sizes).
* **exhaustive** — ``verigrad.check(d, at=point, mode="exhaustive")`` timed against the black-box central
  differences a user would write: for each of the P checked entries, two plain NumPy forwards
  (``d.forward(array_api_compat.numpy, ...)``) at x ± h, 2P in all. Half of those forwards run before the
  check and half after, so that both see the same load; the target is at most 1.5× their time.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Mapping

import array_api_compat.numpy as np_xp
import numpy as np

import verigrad

SEED_SPEC = "N=64,D_in=1000,H=100,D_out=10"
PLANTED = 1e-6  # of max|∂f/∂W1|
PLANTED_AT = (0, 0)
MAX_FORWARDS = 200
MAX_EXHAUSTIVE_RATIO = 1.5
STEP = 1e-6


def parse_sizes(spec: str) -> dict[str, int]:
    sizes = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        sizes[key.strip()] = int(value)
    return sizes


def planted(d: verigrad.Derivation) -> verigrad.Derivation:
    """``d`` with ∂f/∂W1[PLANTED_AT] moved by PLANTED · max|∂f/∂W1|."""
    hand = d.gradients

    def gradients(X, W1, W2, Y):
        g = dict(hand(X=X, W1=W1, W2=W2, Y=Y))
        g["W1"] = np.array(g["W1"], dtype=np.float64, copy=True)
        g["W1"][PLANTED_AT] += PLANTED * float(np.max(np.abs(g["W1"])))
        return g

    return verigrad.Derivation(name=f"{d.name}_planted", shapes=d.shapes, forward=d.forward, gradients=gradients, kinks=d.kinks)


def projection_rows(d: verigrad.Derivation, params: Mapping[str, np.ndarray]) -> list[str]:
    rows = []
    for name, derivation in (("correct", d), (f"planted {PLANTED:g}·max\\|g\\| at W1{PLANTED_AT} (time includes its diagnosis)", planted(d))):
        runs = []
        for _ in range(3 if derivation is d else 1):  # a failure is diagnosed on 4 more points: one run
            t0 = time.perf_counter()
            report = verigrad.check(derivation, at=params, mode="projection")
            runs.append((time.perf_counter() - t0, report))
        seconds, report = statistics.median(s for s, _ in runs), runs[-1][1]
        w1 = next(g for g in report.gradients if g.param == "W1")
        found = w1.worst_index if w1.status != "pass" else None
        want_fail = derivation is not d
        ok = (not report.passed) == want_fail and (not want_fail or tuple(found or ()) == PLANTED_AT) and report.evaluations <= MAX_FORWARDS
        rows.append(
            f"| projection, {name} | {seconds:.2f} | {report.evaluations} (≤ {MAX_FORWARDS}) | {report.status} "
            f"| {'—' if found is None else f'W1{tuple(found)}'} | {'✓' if ok else '✗'} |"
        )
    return rows


def central_differences(d: verigrad.Derivation, params: Mapping[str, np.ndarray], entries: list[tuple[str, int]]) -> float:
    """Seconds for the black-box central differences at ``entries``: two plain NumPy forwards each."""
    x = {k: np.array(v, dtype=np.float64, copy=True) for k, v in params.items()}
    flat = {k: v.reshape(-1) for k, v in x.items()}
    t0 = time.perf_counter()
    for name, i in entries:
        v = flat[name]
        old = v[i]
        v[i] = old + STEP
        up = float(d.forward(np_xp, **x))
        v[i] = old - STEP
        down = float(d.forward(np_xp, **x))
        v[i] = old
        _ = (up - down) / (2 * STEP)
    return time.perf_counter() - t0


def exhaustive_rows(d: verigrad.Derivation, params: Mapping[str, np.ndarray]) -> tuple[list[str], int]:
    entries = [(k, i) for k in d.check for i in range(params[k].size)]
    half = len(entries) // 2
    before = central_differences(d, params, entries[:half])
    t0 = time.perf_counter()
    report = verigrad.check(d, at=params, mode="exhaustive")
    seconds = time.perf_counter() - t0
    after = central_differences(d, params, entries[half:])
    plain = before + after
    ratio = seconds / plain
    mark = "✓" if ratio <= MAX_EXHAUSTIVE_RATIO and report.passed else "✗"
    rows = [
        f"| 2P plain NumPy forwards (black-box central differences) | {plain:.2f} | {2 * len(entries):,} | — | — | — |",
        f"| exhaustive, correct | {seconds:.2f} | {report.evaluations:,} | {report.status} | — "
        f"| {ratio:.2f} × 2P forwards (≤ {MAX_EXHAUSTIVE_RATIO:g}) {mark} |",
    ]
    return rows, len(entries)


def measure(sizes: Mapping[str, int], exhaustive: bool = True, echo=print) -> list[str]:
    """The seed's-sizes table as Markdown lines, each ``echo``-ed as soon as it is measured."""
    d = verigrad.builtin("two_layer_relu")
    params = verigrad.draw_point(d, sizes, 0).params
    verigrad.check(d, at=verigrad.draw_point(d, {k: 1 for k in sizes}, 0).params)  # warm
    P = sum(params[k].size for k in d.check)
    spec = ", ".join(f"{k}={v}" for k, v in sizes.items())
    lines = [
        f"## The seed's sizes: two_layer_relu at {spec} (P = {P:,} checked entries)",
        "",
        "| measurement | seconds | forward evaluations | status | index found | target |",
        "|---|---|---|---|---|---|",
    ]
    echo("\n".join(lines), flush=True)
    rows = projection_rows(d, params)
    echo("\n".join(rows), flush=True)
    if exhaustive:
        more, _ = exhaustive_rows(d, params)
        echo("\n".join(more), flush=True)
        rows += more
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    tail = ["", f"Peak resident memory of the benchmark process: {peak:.2f} GB."]
    echo("\n".join(tail), flush=True)
    return [*lines, *rows, *tail]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=SEED_SPEC, help="e.g. N=8,D_in=50,H=10,D_out=3 to try the script quickly")
    ap.add_argument("--no-exhaustive", action="store_true", help="only the planted entry (projection), seconds")
    args = ap.parse_args(argv)
    measure(parse_sizes(args.sizes), exhaustive=not args.no_exhaustive)


if __name__ == "__main__":
    main()
