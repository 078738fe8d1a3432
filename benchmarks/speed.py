"""Speed through the public API, beside torch.autograd.gradcheck on the same points, in the same run.

Run on demand, not in the test suite::

    python benchmarks/speed.py --quick                      # a minute or less: checks that the script works
    python benchmarks/speed.py --markdown PATH              # small shapes, medians of 5 rounds (a few minutes)
    python benchmarks/speed.py --seed-size --markdown PATH  # and the seed's sizes (about 5 more minutes)

What is timed (wall clock, ``time.perf_counter``):

* **one point** — ``verigrad.check(d, at=point)`` on points drawn as the search draws them: sizes uniform in
  the derivation's dim ranges (every dim 1–8), values ``verigrad.draw_point(d, sizes, seed)``; torch's
  gradcheck (slow mode, and fast_mode) on exactly those arrays. The methods take turns point by point.
* **search** — ``verigrad.check(d, examples=E, seed=S, database=False)`` end to end (hypothesis, draws,
  verdicts, report); its ``points`` (E sizes × 16 value draws) divided by the time is its points/s. The
  derivation handed to it records the arrays its ``gradients`` is called with; the distinct ones (calls at
  autograd's jittered copies of a point, 2⁻²⁸ away, are folded into the point) are the very points the search
  checked, and torch's gradcheck then runs on those. Their count must equal the report's ``points``.
* torch checks the hand-written gradient as a user of gradcheck would: the derivation's forward, on float64
  tensors, inside a ``torch.autograd.Function`` whose backward returns ``d.gradients`` (``--torch-backward
  autograd`` lets torch differentiate the forward itself instead). Default tolerances.
* beside them, the **course loop**: what a course's gradient-check notebook does on the same point — central
  differences of the NumPy forward at h = 1e-5, two forward calls per checked entry, one call of
  ``d.gradients``, and the relative error max |a − n| / max(1e-8, |a| + |n|) passed below 1e-7.

Each measurement is repeated in rounds (ours, then torch, on the same points); the table shows the median
points/s of each method and the median of the per-round ratios. On a shared machine wall times move with
the load: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import array_api_compat.torch as torch_xp
import numpy as np
import torch

import verigrad

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exhaustive_seed_size as seed_size  # the seed's sizes: projection and exhaustive

DERIVATIONS = ("two_layer_sigmoid", "two_layer_relu")
#: Targets of the issue: points/s as a multiple of torch gradcheck's slow mode.
TARGET_ONE_POINT = 5.0
TARGET_SEARCH = 30.0
#: Two recorded calls are one point when every parameter agrees to this fraction of its max |value|.
SAME_POINT = 1e-6


# --- torch's gradcheck on one point ----------------------------------------------------------------
def torch_function(d: verigrad.Derivation, backward: str) -> Callable[..., torch.Tensor]:
    """The derivation's forward as a function of its parameter tensors (in ``d.params`` order).

    ``backward="hand"``: the backward is the hand-written ``d.gradients`` (what gradcheck then checks);
    ``"autograd"``: torch differentiates the forward itself.
    """
    names = d.params
    if backward == "autograd":
        return lambda *tensors: d.forward(torch_xp, **dict(zip(names, tensors, strict=True)))

    class Hand(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            ctx.save_for_backward(*tensors)
            return d.forward(torch_xp, **dict(zip(names, tensors, strict=True)))

        @staticmethod
        def backward(ctx, grad_output):
            values = {k: t.detach().numpy() for k, t in zip(names, ctx.saved_tensors, strict=True)}
            g = d.gradients(**values)
            return tuple(grad_output * torch.from_numpy(np.asarray(g[k], dtype=np.float64)) if k in d.check else None for k in names)

    return Hand.apply


def gradcheck(d: verigrad.Derivation, fn, params: Mapping[str, np.ndarray], fast: bool) -> bool:
    inputs = tuple(torch.tensor(params[k], dtype=torch.float64, requires_grad=k in d.check) for k in d.params)
    return bool(torch.autograd.gradcheck(fn, inputs, fast_mode=fast, raise_exception=False))


COURSE_STEP = 1e-5  # the step of a course notebook's eval_numerical_gradient
COURSE_PASS = 1e-7  # its rule of thumb: a relative error below 1e-7 is "probably right"


def course_loop(d: verigrad.Derivation, params: Mapping[str, np.ndarray]) -> bool:
    """A course notebook's check of the hand-written gradient at ``params``: every checked entry nudged by ±h in turn."""
    x = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    analytic = d.gradients(**x)
    worst = 0.0
    for k in d.check:
        it = np.nditer(x[k], flags=["multi_index"], op_flags=[["readwrite"]])
        numeric = np.zeros_like(x[k])
        while not it.finished:
            i, old = it.multi_index, x[k][it.multi_index]
            x[k][i] = old + COURSE_STEP
            fp = float(d.forward(np, **x))
            x[k][i] = old - COURSE_STEP
            fm = float(d.forward(np, **x))
            x[k][i] = old
            numeric[i] = (fp - fm) / (2 * COURSE_STEP)
            it.iternext()
        a = np.asarray(analytic[k], dtype=np.float64)
        worst = max(worst, float(np.max(np.abs(a - numeric) / np.maximum(1e-8, np.abs(a) + np.abs(numeric)), initial=0.0)))
    return worst < COURSE_PASS


# --- rounds and their medians ----------------------------------------------------------------------
@dataclass
class Tally:
    """One method's rounds: seconds and points checked in each, and how many points it passed."""

    seconds: list[float] = field(default_factory=list)
    points: list[int] = field(default_factory=list)
    passed: int = 0
    checked: int = 0

    def add(self, seconds: float, points: int, passed: int) -> None:
        self.seconds.append(seconds)
        self.points.append(points)
        self.passed += passed
        self.checked += points

    def rates(self) -> list[float]:
        return [n / s for n, s in zip(self.points, self.seconds, strict=True)]

    def rate(self) -> float:
        return statistics.median(self.rates())


@dataclass
class Row:
    measurement: str
    derivation: str
    ours: Tally
    slow: Tally
    fast: Tally
    course: Tally
    target: float

    def ratio(self, other: Tally) -> float:
        return statistics.median(a / b for a, b in zip(self.ours.rates(), other.rates(), strict=True))


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def torch_on(d, fn, points, fast: bool, tally: Tally) -> None:
    t0 = time.perf_counter()
    passed = sum(gradcheck(d, fn, p, fast) for p in points)
    tally.add(time.perf_counter() - t0, len(points), passed)


# --- one given point at a time ---------------------------------------------------------------------
def small_points(d: verigrad.Derivation, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``count`` points as the search draws them: sizes uniform in the dim ranges, values by draw_point."""
    rng = random.Random(seed)
    points = []
    for i in range(count):
        sizes = {dim: rng.randint(*d.dim_range(dim)) for dim in d.symbols}
        points.append(verigrad.draw_point(d, sizes, seed + i).params)
    return points


def one_point(d: verigrad.Derivation, count: int, rounds: int, backward: str) -> Row:
    """check(d, at=point) against gradcheck, point by point: the three methods take turns on each point."""
    fn = torch_function(d, backward)
    row = Row("one point: check(d, at=point)", d.name, Tally(), Tally(), Tally(), Tally(), TARGET_ONE_POINT)
    methods = (
        (row.ours, lambda p: verigrad.check(d, at=p).passed),
        (row.slow, lambda p: gradcheck(d, fn, p, fast=False)),
        (row.fast, lambda p: gradcheck(d, fn, p, fast=True)),
        (row.course, lambda p: course_loop(d, p)),
    )
    points = small_points(d, count, seed=0)
    for _, method in methods:  # warm every path (imports, torch's first calls)
        method(points[0])
    for r in range(rounds):
        seconds, passed = [0.0] * len(methods), [0] * len(methods)
        for i, p in enumerate(points):
            order = range(len(methods)) if (i + r) % 2 == 0 else reversed(range(len(methods)))
            for m in order:
                ok, took = timed(methods[m][1], p)
                seconds[m] += took
                passed[m] += bool(ok)
        for m, (tally, _) in enumerate(methods):
            tally.add(seconds[m], len(points), passed[m])
    return row


# --- the search as a user calls it -----------------------------------------------------------------
def recording(d: verigrad.Derivation) -> tuple[verigrad.Derivation, list[dict[str, np.ndarray]]]:
    """The same derivation, whose gradients keeps every set of arguments it is called with."""
    calls: list[dict[str, np.ndarray]] = []
    hand = d.gradients

    @functools.wraps(hand)
    def gradients(**params):
        calls.append(params)
        return hand(**params)

    same = verigrad.Derivation(
        name=d.name, shapes=d.shapes, forward=d.forward, gradients=gradients, output=d.output,
        check=d.check, ranges=d.ranges, dims=d.dims, kinks=d.kinks, doc=d.doc,
    )  # fmt: skip
    return same, calls


def distinct_points(calls: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The points among the recorded calls: a call within SAME_POINT of an earlier one is that point."""

    def near(a, b) -> bool:
        return all(np.max(np.abs(a[k] - b[k]), initial=0.0) <= SAME_POINT * np.max(np.abs(b[k]), initial=0.0) for k in b)

    by_shapes: dict[tuple, list[dict[str, np.ndarray]]] = {}
    points = []
    for call in calls:
        params = {k: np.asarray(v) for k, v in call.items() if k != "grad_output"}
        seen = by_shapes.setdefault(tuple((k, v.shape) for k, v in params.items()), [])
        if not any(near(params, p) for p in seen):
            seen.append(params)
            points.append(params)
    return points


def search(d: verigrad.Derivation, examples: int, seed: int, rounds: int, backward: str) -> tuple[Row, list[str]]:
    """check(d, examples=E, seed=S + r, database=False) end to end, then gradcheck on the points it checked."""
    fn = torch_function(d, backward)
    row = Row(f"search: check(d, examples={examples})", d.name, Tally(), Tally(), Tally(), Tally(), TARGET_SEARCH)
    notes = []
    verigrad.check(d, examples=1, seed=seed, database=False)  # warm
    for r in range(rounds):
        recorded, calls = recording(d)
        report, took = timed(verigrad.check, recorded, examples=examples, seed=seed + r, database=False)
        points = distinct_points(calls)
        if len(points) != report.points:
            notes.append(f"{d.name}, seed {seed + r}: {len(points)} distinct points recorded, the report says {report.points}")
        row.ours.add(took, report.points, report.points if report.passed else report.points - 1)
        torch_on(d, fn, points, False, row.slow)
        torch_on(d, fn, points, True, row.fast)
        t0 = time.perf_counter()
        passed = sum(course_loop(d, p) for p in points)
        row.course.add(time.perf_counter() - t0, len(points), passed)
    return row, notes


# --- the table -------------------------------------------------------------------------------------
def machine() -> list[str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in _cpuinfo() if ln.startswith("model name")), platform.machine())
    load = os.getloadavg()
    return [
        f"Date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}; machine: {cpu}, {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable), torch intra-op threads {torch.get_num_threads()}; {platform.platform()}.",
        f"Python {platform.python_version()}, verigrad {verigrad.__version__}, torch {torch.__version__}, numpy {np.__version__}.",
        f"Load average at start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min).",
    ]


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| measurement | derivation | points per round | rounds | verigrad points/s | torch slow points/s | × slow | target "
        "| torch fast_mode points/s | × fast_mode | course loop points/s | × course loop "
        "| passed: verigrad / slow / fast_mode / course loop |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        x = row.ratio(row.slow)
        mark = "✓" if x >= row.target else "✗"
        passed = " / ".join(f"{t.passed}/{t.checked}" for t in (row.ours, row.slow, row.fast, row.course))
        lines.append(
            f"| {row.measurement} | {row.derivation} | {statistics.median(row.ours.points):.0f} | {len(row.ours.seconds)} "
            f"| {row.ours.rate():.1f} | {row.slow.rate():.1f} | {x:.2f} | ≥ {row.target:g} {mark} "
            f"| {row.fast.rate():.1f} | {row.ratio(row.fast):.2f} | {row.course.rate():.1f} | {row.ratio(row.course):.2f} | {passed} |"
        )
    return lines


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few points and rounds: checks that the script works (under a minute)")
    ap.add_argument("--rounds", type=int, help="rounds of every measurement (default 5; --quick 2)")
    ap.add_argument("--points", type=int, help="points per round, one point at a time (default 100; --quick 15)")
    ap.add_argument("--examples", type=int, help="sizes the search tries per round (default 30; --quick 3)")
    ap.add_argument("--seed", type=int, default=1, help="run seed of the first search round (round r uses seed + r)")
    ap.add_argument("--torch-backward", choices=("hand", "autograd"), default="hand", help="what torch's gradcheck checks")
    ap.add_argument("--seed-size", action="store_true", help="also the seed's sizes: planted entry (projection), exhaustive vs 2P forwards")
    ap.add_argument("--seed-sizes", default=seed_size.SEED_SPEC, help="sizes for --seed-size, e.g. N=8,D_in=50,H=10,D_out=3 to try it")
    ap.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown to PATH")
    args = ap.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (2 if quick else 5)
    args.points = args.points or (15 if quick else 100)
    args.examples = args.examples or (3 if quick else 30)
    return args


def main(argv=None) -> None:
    args = parse(argv)
    lines = ["# verigrad speed, through the public API, beside torch.autograd.gradcheck", "", *machine(), ""]
    print("\n".join(lines), flush=True)
    rows, notes = [], []
    for name in DERIVATIONS:
        d = verigrad.builtin(name)
        rows.append(one_point(d, args.points, args.rounds, args.torch_backward))
        row, more = search(d, args.examples, args.seed, args.rounds, args.torch_backward)
        rows.append(row)
        notes += more
    small = [f"## Small shapes (every dim 1–8); torch checks the {args.torch_backward} backward", "", *table(rows), ""]
    small += [f"Note: {n}." for n in notes]
    print("\n".join(small), flush=True)
    lines += small
    if args.seed_size:
        lines += seed_size.measure(seed_size.parse_sizes(args.seed_sizes))
    load = os.getloadavg()
    lines += ["", f"Load average at end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.", ""]
    print(lines[-2])
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines))
        print(f"written {args.markdown}")


if __name__ == "__main__":
    main()
