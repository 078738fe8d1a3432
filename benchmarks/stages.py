"""Where the time of a check goes, stage by stage, through the public API as a user calls it.

Run on demand, not in the test suite::

    python benchmarks/stages.py                     # both derivations, one point and the search
    python benchmarks/stages.py --points 100 --examples 30 --markdown PATH

Timed (wall clock, ``time.perf_counter``) are ``verigrad.check(d, at=point)`` on the points ``speed.py``
draws, and ``verigrad.check(d, examples=E, seed=S, database=False)``. While they run, the functions each stage
is made of are wrapped by a timer (and unwrapped afterwards): the checks before the references, autograd, the
rounding noise σ_t and σ_a where a verdict needs it (for a search's stack: where some point it could pass is
not clean with σ = 0, and at the points its figures are taken at), the finite differences, the judgement (one
pass over every parameter), the points the search checks again alone. A stage called inside another is shown
under it (its time is part of its parent's); "everything else" is the total less the outermost stages:
hypothesis, drawing the points, building the reports. torch's autograd engine (``torch.autograd.grad``: the
backward and the double backward of σ_t) is shown inside the stage that calls it.

Then who spends the time, in a second pass over the same points (the same search): the user's forward and
gradients called in NumPy; torch (the witnesses' vmapped forwards, which run the user's forward under torch,
autograd's engine, and the torch forward of a point no stack serves); and the rest of the checks of points, verigrad's
own Python and NumPy bookkeeping. For the search, the time outside the checks of points (hypothesis, drawing
the points, the search's report, and σ measured for the points its figures are taken at) is a line of its own.

Under each table: torch.autograd.gradcheck (slow mode) on the same points, timed in the same run (for the
search, the distinct points it checked, as ``speed.py`` counts them), the time per point that the issue's
target multiple of torch's points/s leaves, and how that compares with the two witnesses' own stages
(autograd with σ_t, and the finite differences).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

import verigrad
from verigrad.checks.search import search as search_module
from verigrad.checks.verdict import before, references, stacked
from verigrad.checks.verdict import point as point_check
from verigrad.reference import Stack

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # the same points and derivations as the speed table

#: (label, owner, attribute): the functions each stage is made of, where its callers look them up.
#: The references, the same in both measurements:
REFERENCES = (
    ("autograd (one vmapped forward, one backward)", Stack, "autograd"),
    ("autograd and σ_t in one call (where σ is wanted up front: a diagnosis's evidence)", Stack, "autograd_with_noise"),
    ("σ_t (the jittered copies: vmapped forward, backward, double backward); only where a verdict or a figure needs it", Stack, "noise"),
    ("torch autograd engine (backward, double backward)", torch.autograd, "grad"),
    ("σ_a (the hand-derived gradients at the jittered copies); only where a verdict or a figure needs it", references, "stacked_analytic_noise"),
    ("finite differences (one vmapped forward of every row)", Stack, "finite_differences"),
)
ONE_POINT_STAGES = (
    ("checks before the references (inputs, forward ×4 NumPy, gradients ×2; under torch, the stack's unperturbed row)", point_check, "check_point"),
    *REFERENCES,
    ("judgement and the report's numbers (one pass over every parameter)", point_check, "judge_at_point"),
)
SEARCH_STAGES = (
    ("screen (inputs, forward ×4 NumPy, gradients ×2, per point)", stacked, "screen"),
    *REFERENCES,
    ("judgement of the stack (one pass over every parameter)", stacked, "judge_stacks"),
    ("points checked again alone", stacked, "evaluate"),
)


@dataclass
class Stages:
    """Inclusive seconds per stage, the stage each was first seen inside, and the outermost stages' sum."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    parent: dict[str, str | None] = field(default_factory=dict)
    outermost: float = 0.0
    active: list[str] = field(default_factory=list)

    def timer(self, label: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.parent.setdefault(label, self.active[-1] if self.active else None)
            self.active.append(label)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - t0
                self.active.pop()
                self.seconds[label] = self.seconds.get(label, 0.0) + took
                self.calls[label] = self.calls.get(label, 0) + 1
                if not self.active:
                    self.outermost += took

        return timed


@dataclass
class Owners:
    """Exclusive seconds per owner of the time: a call of an owner's function inside another owner's call counts
    for the outer one only (the user's forward inside a vmapped torch call is torch's time)."""

    seconds: dict[str, float] = field(default_factory=dict)
    inside: int = 0

    def timer(self, label: str, fn: Callable) -> Callable:
        self.seconds.setdefault(label, 0.0)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self.inside:
                return fn(*args, **kwargs)
            self.inside += 1
            t0 = time.perf_counter()
            try:
                got = fn(*args, **kwargs)
            finally:
                self.inside -= 1
                self.seconds[label] += time.perf_counter() - t0
            return self._each(label, got) if isinstance(got, Iterator) else got

        return timed

    def _each(self, label: str, items: Iterator) -> Iterator:
        """A generator's items, each one's making timed (the checks of points are lazy)."""
        while True:
            self.inside += 1
            t0 = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                self.inside -= 1
                self.seconds[label] += time.perf_counter() - t0
            yield item


#: The owners of a check's time besides verigrad's own Python and NumPy: the user's calls and torch's.
USER = "the user's forward and gradients, called in NumPy"
TORCH = "torch: the witnesses' vmapped forwards (the user's forward under torch), autograd's engine, the torch forward of a point no stack serves"
POINTS = "checks of points"
TORCH_CALLS = ((Stack, "_vmapped"), (torch.autograd, "grad"), (before, "forward_value_torch"))


def timed_derivation(d: verigrad.Derivation, owners: Owners) -> verigrad.Derivation:
    """``d`` with its forward and gradients timed as the user's calls."""
    return verigrad.Derivation(
        name=d.name, shapes=d.shapes, forward=owners.timer(USER, d.forward), gradients=owners.timer(USER, d.gradients),
        output=d.output, check=d.check, ranges=d.ranges, dims=d.dims, kinks=d.kinks, doc=d.doc,
    )  # fmt: skip


@contextmanager
def owned(owners: Owners, calls: Sequence[tuple[object, str]], label: str) -> Iterator[Owners]:
    """The functions ``calls`` names timed as ``label``'s in ``owners`` inside the block."""
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr in calls]
    try:
        for owner, attr, fn in saved:
            setattr(owner, attr, owners.timer(label, fn))
        yield owners
    finally:
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)


def owner_lines(total: float, units: int, unit: str, owners: Owners, points: float | None = None) -> list[str]:
    """Who spends the time: the user's calls, torch, and verigrad's own bookkeeping (the rest of the checks of
    points; for the search, hypothesis and the search's own work outside them on a line of their own)."""
    user, torch_s = owners.seconds.get(USER, 0.0), owners.seconds.get(TORCH, 0.0)
    inside = total if points is None else points
    rows = [(USER, user), (TORCH, torch_s), ("verigrad's bookkeeping (its Python and NumPy in the checks of points)", inside - user - torch_s)]
    if points is not None:
        rows.append(("outside the checks of points: hypothesis, drawing the points, the search's report", total - points))
    out = [f"| who | ms per {unit} | share |", "|---|---|---|"]
    out += [f"| {label} | {sec / units * 1e3:.3f} | {sec / total:.0%} |" for label, sec in rows]
    return [*out, ""]


@contextmanager
def staged(stages: Sequence[tuple[str, object, str]]) -> Iterator[Stages]:
    """Every stage's function wrapped by a timer inside the block, restored on the way out."""
    got = Stages()
    saved = [(owner, attr, getattr(owner, attr)) for _, owner, attr in stages]
    try:
        for (label, owner, attr), (_, _, fn) in zip(stages, saved, strict=True):
            setattr(owner, attr, got.timer(label, fn))
        yield got
    finally:
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)


def lines(title: str, total: float, units: int, unit: str, got: Stages, budget: Budget) -> list[str]:
    """A Markdown table: each stage's ms per ``unit`` and its share of the total; then what the target allows."""
    out = [f"### {title}", "", f"| stage | ms per {unit} | share | calls |", "|---|---|---|---|"]

    def row(label: str, seconds: float, depth: int, calls: str) -> None:
        out.append(f"| {'↳ ' * depth}{label} | {seconds / units * 1e3:.3f} | {seconds / total:.0%} | {calls} |")

    def depth(label: str) -> int:
        p = got.parent.get(label)
        return 0 if p is None else 1 + depth(p)

    def walk(parent: str | None) -> None:
        for label in got.seconds:
            if got.parent.get(label) == parent:
                row(label, got.seconds[label], depth(label), str(got.calls[label]))
                walk(label)

    walk(None)
    row("everything else (hypothesis, draws, reports, Python between the stages)", total - got.outermost, 0, "")
    row("total", total, 0, "")
    return [*out, "", *budget.lines(got, units, unit), ""]


@dataclass
class Budget:
    """torch gradcheck (slow mode) on the same points, and the time per point its target multiple leaves."""

    torch_seconds: float
    points: int
    target: float

    def lines(self, got: Stages, units: int, unit: str) -> list[str]:
        per_unit = self.torch_seconds / units * 1e3
        allowed = per_unit / self.target
        witnesses = sum(got.seconds.get(label, 0.0) for label in OUTERMOST_REFERENCES) / units * 1e3
        return [
            f"torch gradcheck (slow mode) on the same {self.points} points: {per_unit:.3f} ms per {unit}. "
            f"The target, {self.target:g}× torch's points/s, allows {allowed:.3f} ms per {unit}; "
            f"autograd with σ_t and the finite differences alone take {witnesses:.3f} ms ({witnesses / allowed:.1f}× that)."
        ]


#: The two witnesses' own stages: Stack's autograd and finite differences (the engine row is inside autograd's).
OUTERMOST_REFERENCES = tuple(label for label, owner, _ in REFERENCES if owner is Stack)


def torch_seconds(d: verigrad.Derivation, points: Sequence[dict]) -> float:
    """Seconds of torch gradcheck, slow mode, on ``points`` (the hand backward, as speed.py checks it)."""
    fn = speed.torch_function(d, "hand")
    speed.gradcheck(d, fn, points[0], fast=False)  # warm
    tally = speed.Tally()
    speed.torch_on(d, fn, points, False, tally)
    return tally.seconds[0]


def one_point(d: verigrad.Derivation, count: int) -> list[str]:
    points = speed.small_points(d, count, seed=0)
    for p in points[:3]:  # warm every path
        verigrad.check(d, at=p)
    with staged(ONE_POINT_STAGES) as got:
        t0 = time.perf_counter()
        for p in points:
            verigrad.check(d, at=p)
        total = time.perf_counter() - t0
    owners = Owners()
    timed = timed_derivation(d, owners)
    with owned(owners, TORCH_CALLS, TORCH):
        for p in points[:3]:  # warm the timed derivation's paths
            verigrad.check(timed, at=p)
        owners.seconds = dict.fromkeys(owners.seconds, 0.0)
        t0 = time.perf_counter()
        for p in points:
            verigrad.check(timed, at=p)
        again = time.perf_counter() - t0
    budget = Budget(torch_seconds(d, points), count, speed.TARGET_ONE_POINT)
    out = lines(f"{d.name}: check(d, at=point), {count} points", total, count, "point", got, budget)
    return [*out, "Who spends it (a second pass over the same points, timed by owner):", "", *owner_lines(again, count, "point", owners)]


def search(d: verigrad.Derivation, examples: int, seed: int) -> list[str]:
    verigrad.check(d, examples=1, seed=seed + 1000, database=False)  # warm
    recorded, calls = speed.recording(d)
    with staged(SEARCH_STAGES) as got:
        t0 = time.perf_counter()
        report = verigrad.check(recorded, examples=examples, seed=seed, database=False)
        total = time.perf_counter() - t0
    points = speed.distinct_points(calls)
    owners = Owners()
    timed = timed_derivation(d, owners)
    checks = Owners()
    with owned(owners, TORCH_CALLS, TORCH), owned(checks, [(search_module, "check_points")], POINTS):
        verigrad.check(timed, examples=1, seed=seed + 1000, database=False)  # warm
        owners.seconds, checks.seconds = dict.fromkeys(owners.seconds, 0.0), dict.fromkeys(checks.seconds, 0.0)
        t0 = time.perf_counter()
        verigrad.check(timed, examples=examples, seed=seed, database=False)
        again = time.perf_counter() - t0
    # torch on the distinct points; the search's own repeats (overlapping seed windows) cost torch nothing
    budget = Budget(torch_seconds(d, points) * report.points / len(points), len(points), speed.TARGET_SEARCH)
    title = f"{d.name}: check(d, examples={examples}), {report.points} points in {examples} stacks"
    out = lines(title, total, examples, "stack of 16 points", got, budget)
    who = owner_lines(again, examples, "stack of 16 points", owners, checks.seconds[POINTS])
    return [*out, "Who spends it (the same search again, timed by owner):", "", *who]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=40, help="points checked one at a time (default 40)")
    ap.add_argument("--examples", type=int, default=30, help="sizes the search tries (default 30)")
    ap.add_argument("--seed", type=int, default=1, help="run seed of the search")
    ap.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown to PATH")
    args = ap.parse_args(argv)
    out = ["## Where the time goes", "", *speed.machine(), ""]
    for name in speed.DERIVATIONS:
        d = verigrad.builtin(name)
        out += one_point(d, args.points)
        out += search(d, args.examples, args.seed)
    print("\n".join(out))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(out))
        print(f"written {args.markdown}")


if __name__ == "__main__":
    main()
